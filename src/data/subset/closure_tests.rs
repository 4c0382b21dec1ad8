//! Tests of the module above.

use super::*;
use crate::data::subset::*;

/// Tables in memory: rows are maps of column → value; ctid = row index.
#[derive(Default)]
struct Memory {
    names: Vec<QualifiedName>,
    tables: Vec<Vec<BTreeMap<String, Option<String>>>>,
}

fn qn(s: &str) -> QualifiedName {
    QualifiedName {
        schema: "public".into(),
        name: s.into(),
    }
}

impl Memory {
    fn id(&self, table: &QualifiedName) -> Leaf {
        self.names.iter().position(|n| n == table).unwrap() as Leaf
    }

    fn add(&mut self, table: &str, rows: &[&[(&str, Option<&str>)]]) {
        self.names.push(qn(table));
        self.tables.push(Vec::new());
        let t = self.tables.last_mut().unwrap();
        for r in rows {
            t.push(
                r.iter()
                    .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                    .collect(),
            );
        }
    }

    fn eval(row: &BTreeMap<String, Option<String>>, expr: &str) -> Option<String> {
        match expr.split_once(" = ") {
            Some((col, lit)) => Some(
                (row.get(col).cloned().flatten().as_deref() == Some(lit.trim_matches('\'')))
                    .to_string(),
            ),
            None => row.get(expr).cloned().flatten(),
        }
    }
}

impl RowSource for Memory {
    fn leaf_name(&self, leaf: Leaf) -> QualifiedName {
        self.names[leaf as usize].clone()
    }

    async fn values(
        &mut self,
        leaf: Leaf,
        ctids: &[u64],
        exprs: &[String],
    ) -> Result<Vec<(u64, Vec<Option<String>>)>, Error> {
        let t = &self.tables[leaf as usize];
        Ok(ctids
            .iter()
            .map(|&c| {
                let row = &t[c as usize];
                (c, exprs.iter().map(|x| Memory::eval(row, x)).collect())
            })
            .collect())
    }

    async fn find(
        &mut self,
        table: &QualifiedName,
        exprs: &[String],
        _types: &[String],
        filter: Option<&str>,
        tuples: &[Vec<&str>],
        want: &[String],
        each: &mut (dyn FnMut(Vec<Found>) -> Result<(), Error> + Send),
    ) -> Result<(), Error> {
        let id = self.id(table);
        let t = &self.tables[id as usize];
        let found: Vec<Found> = t
            .iter()
            .enumerate()
            .filter(|(_, row)| {
                filter.is_none_or(|f| Memory::eval(row, f).as_deref() == Some("true"))
            })
            .filter_map(|(i, row)| {
                let key: Option<Vec<String>> = exprs.iter().map(|x| Memory::eval(row, x)).collect();
                key.filter(|k| tuples.iter().any(|t| t == k)).map(|k| {
                    let v = want.iter().map(|x| Memory::eval(row, x)).collect();
                    (id, i as u64, k, v)
                })
            })
            .collect();
        // Batches of two, so the tests cover results that arrive in parts.
        for part in found.chunks(2) {
            each(part.to_vec())?;
        }
        Ok(())
    }
}

fn edge(name: &str, child: &str, cc: &[&str], parent: &str, pc: &[&str], down: Down) -> Edge {
    Edge {
        name: name.into(),
        child: qn(child),
        child_exprs: cc.iter().map(|s| s.to_string()).collect(),
        child_types: cc.iter().map(|_| "text".to_string()).collect(),
        child_filter: None,
        parent: qn(parent),
        parent_exprs: pc.iter().map(|s| s.to_string()).collect(),
        parent_types: pc.iter().map(|_| "text".to_string()).collect(),
        down,
        certain: false,
    }
}

fn root(m: &Memory, table: &str, ctids: &[u64]) -> Work {
    Work {
        table: qn(table),
        rows: ctids.iter().map(|&c| (m.id(&qn(table)), c)).collect(),
        expand: true,
        depth: 0,
        reason: "root".into(),
        values: None,
    }
}

fn rows(c: &Closure, table: &str) -> Vec<u64> {
    c.rows
        .get(&qn(table))
        .map(|r| r.iter().collect())
        .unwrap_or_default()
}

/// users ← orders ← items; orders.referrer → users (second FK to the same parent);
/// users.manager → users (self); users.team → teams, teams.lead → users (a cycle).
fn shop() -> Memory {
    let mut m = Memory::default();
    m.add(
        "teams",
        &[
            &[("id", Some("t1")), ("lead", Some("u2"))],
            &[("id", Some("t2")), ("lead", Some("u4"))],
        ],
    );
    m.add(
        "users",
        &[
            &[
                ("id", Some("u1")),
                ("manager", Some("u2")),
                ("team", Some("t1")),
            ],
            &[("id", Some("u2")), ("manager", None), ("team", Some("t1"))],
            &[("id", Some("u3")), ("manager", Some("u1")), ("team", None)],
            &[("id", Some("u4")), ("manager", None), ("team", Some("t2"))],
        ],
    );
    m.add(
        "orders",
        &[
            &[
                ("id", Some("o1")),
                ("user", Some("u1")),
                ("referrer", Some("u3")),
            ],
            &[("id", Some("o2")), ("user", Some("u2")), ("referrer", None)],
            &[("id", Some("o3")), ("user", Some("u4")), ("referrer", None)],
            &[("id", Some("o4")), ("user", Some("u9")), ("referrer", None)],
        ],
    );
    m.add(
        "items",
        &[
            &[("order", Some("o1")), ("sku", Some("a"))],
            &[("order", Some("o2")), ("sku", Some("b"))],
            &[("order", Some("o3")), ("sku", Some("c"))],
        ],
    );
    m
}

fn shop_edges(users_orders: Down, items: Down) -> Vec<Edge> {
    vec![
        edge(
            "orders_user",
            "orders",
            &["user"],
            "users",
            &["id"],
            users_orders,
        ),
        edge(
            "orders_referrer",
            "orders",
            &["referrer"],
            "users",
            &["id"],
            Down::Never,
        ),
        edge("items_order", "items", &["order"], "orders", &["id"], items),
        edge(
            "users_manager",
            "users",
            &["manager"],
            "users",
            &["id"],
            Down::Never,
        ),
        edge(
            "users_team",
            "users",
            &["team"],
            "teams",
            &["id"],
            Down::Never,
        ),
        edge(
            "teams_lead",
            "teams",
            &["lead"],
            "users",
            &["id"],
            Down::Never,
        ),
    ]
}

fn run(edges: &[Edge], roots: Vec<Work>, m: &mut Memory) -> Closure {
    run_limited(edges, roots, m, None)
}

fn run_limited(edges: &[Edge], roots: Vec<Work>, m: &mut Memory, depth: Option<u32>) -> Closure {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(close(edges, roots, m, depth, usize::MAX))
        .unwrap()
}

#[test]
fn children_stop_at_the_depth_limit() {
    let mut m = shop();
    let edges = shop_edges(Down::Children, Down::Children);
    // users → orders is one level, orders → items a second.
    let c = run_limited(&edges, vec![root(&m, "users", &[0])], &mut m, Some(1));
    assert_eq!(rows(&c, "orders"), [0]);
    assert!(
        rows(&c, "items").is_empty(),
        "two levels down is past the limit"
    );
    let mut m = shop();
    let c = run_limited(&edges, vec![root(&m, "users", &[0])], &mut m, Some(2));
    assert_eq!(rows(&c, "items"), [0]);
}

#[test]
fn parents_close_through_self_references_second_keys_and_cycles() {
    let mut m = shop();
    let c = run(
        &shop_edges(Down::Never, Down::Never),
        vec![root(&m, "orders", &[0])],
        &mut m,
    );
    // o1 → u1 (user) and u3 (referrer); u1 → u2 (manager) and t1; u3 → u1; t1 → u2.
    assert_eq!(rows(&c, "orders"), [0]);
    assert_eq!(rows(&c, "users"), [0, 1, 2]);
    assert_eq!(rows(&c, "teams"), [0]);
    assert!(rows(&c, "items").is_empty(), "no children asked for");
    assert_eq!(c.reasons[&qn("users")]["parent of public.orders"], 2);
}

#[test]
fn children_come_from_roots_not_from_rows_pulled_in_as_parents() {
    let mut m = shop();
    let c = run(
        &shop_edges(Down::Children, Down::Children),
        vec![root(&m, "users", &[0])],
        &mut m,
    );
    // u1's order o1 and its item; u2 and u3 came in only as parents: o2 stays out.
    assert_eq!(rows(&c, "orders"), [0]);
    assert_eq!(rows(&c, "items"), [0]);
    assert_eq!(rows(&c, "users"), [0, 1, 2]);
}

#[test]
fn validated_keys_wait_for_their_parents_and_select_the_same_rows() {
    // Certain edges defer their parent lookups (merged across steps, after the children):
    // with no orphans in the data, the rows are exactly those of immediate lookups.
    for (down, parts) in [
        (Down::Children, Down::Children),
        (Down::Never, Down::Always),
        (Down::Children, Down::Always),
    ] {
        for (table, start) in [
            ("users", vec![0]),
            ("items", vec![1]),
            ("orders", vec![0, 2]),
        ] {
            let mut m = shop();
            let plain = shop_edges(down, parts);
            let certain: Vec<Edge> = plain
                .iter()
                .cloned()
                .map(|e| Edge { certain: true, ..e })
                .collect();
            let a = run(&plain, vec![root(&m, table, &start)], &mut m);
            let b = run(&certain, vec![root(&m, table, &start)], &mut m);
            for t in ["users", "orders", "items", "teams"] {
                assert_eq!(rows(&a, t), rows(&b, t), "{t} from {table} {start:?}");
            }
            assert_eq!(a.total(), b.total());
        }
    }
}

#[test]
fn packed_keys_come_back_as_tuples() {
    let mut k = Keys::default();
    k.push(&["1"]);
    k.push(&["a", ""]);
    k.push(&["", "b c"]);
    assert_eq!(k.len(), 3);
    assert_eq!(k.tuples(), vec![vec!["1"], vec!["a", ""], vec!["", "b c"]]);
}

#[test]
fn always_parts_follow_every_included_row() {
    let mut m = shop();
    // Root: u2's team t1 pulls nothing down, but an order entering as a parent of nothing…
    // here: root items of o2 only → o2 as parent → its items always (all of them).
    let c = run(
        &shop_edges(Down::Never, Down::Always),
        vec![root(&m, "items", &[1])],
        &mut m,
    );
    assert_eq!(rows(&c, "orders"), [1]);
    assert_eq!(rows(&c, "items"), [1]);
    let c = run(
        &shop_edges(Down::Never, Down::Always),
        vec![root(&m, "orders", &[0, 2])],
        &mut m,
    );
    assert_eq!(
        rows(&c, "items"),
        [0, 2],
        "every included order brings its items"
    );
}

#[test]
fn orphans_are_left_out_and_counted() {
    let mut m = shop();
    let c = run(
        &shop_edges(Down::Never, Down::Never),
        vec![root(&m, "orders", &[3, 2])],
        &mut m,
    );
    assert_eq!(rows(&c, "orders"), [2], "o4's user u9 does not exist");
    assert_eq!(c.orphans["orders_user"], 1);
    assert_eq!(
        rows(&c, "users"),
        [3],
        "o3's user u4, whose team t2 it leads"
    );
    assert_eq!(rows(&c, "teams"), [1]);
}

#[test]
fn polymorphic_edges_follow_only_their_type() {
    let mut m = shop();
    m.add(
        "comments",
        &[
            &[("kind", Some("order")), ("target", Some("o1"))],
            &[("kind", Some("user")), ("target", Some("u4"))],
            &[("kind", Some("user")), ("target", Some("o1"))],
        ],
    );
    let mut edges = shop_edges(Down::Never, Down::Never);
    let mut poly = edge(
        "virtual: comments(target) -> orders",
        "comments",
        &["target"],
        "orders",
        &["id"],
        Down::Children,
    );
    poly.child_filter = Some("kind = 'order'".into());
    edges.push(poly);
    let c = run(&edges, vec![root(&m, "orders", &[0])], &mut m);
    assert_eq!(rows(&c, "comments"), [0]);
    let c = run(&edges, vec![root(&m, "comments", &[1])], &mut m);
    assert!(
        rows(&c, "orders").is_empty(),
        "a user comment has no order parent"
    );
    assert_eq!(rows(&c, "comments"), [1]);
}

#[test]
fn ctids_pack_and_print() {
    assert_eq!(ctid_text(pack_ctid(12, 7)), "(12,7)");
    assert_eq!(
        parse_ctid("(4294967295,1165)"),
        Some(pack_ctid(u32::MAX, 1165))
    );
    assert_eq!(parse_ctid("x"), None);
}
