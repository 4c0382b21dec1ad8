//! The throwaway PostgreSQL helper works: a cluster starts, answers SQL and is removed on drop.

use crate::support::pg::PgCluster;

#[test]
fn throwaway_cluster_starts_answers_and_is_removed() {
    let pg = PgCluster::start();
    assert_eq!(pg.psql("postgres", "select 40 + 2"), "42");
    pg.psql("postgres", "create database scratch");
    assert_eq!(pg.psql("scratch", "select current_database()"), "scratch");
    let port = pg.port();
    drop(pg);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server still listens after drop"
    );
}
