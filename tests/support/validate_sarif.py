#!/usr/bin/env python3
"""Validate a SARIF log against a JSON Schema file, offline.

In:  SCHEMA (a JSON Schema file, e.g. tests/fixtures/sarif-schema-2.1.0.json)
     and SARIF_FILE (the log to check).
Out: one line per schema violation on stdout, as `JSON-PATH: message`
     followed by the schema keyword that failed; exit status
       0  the log is valid,
       1  the log is invalid (or is not JSON at all),
       2  nothing was validated: bad arguments, an unreadable file, an
          invalid schema, or the `jsonschema` package is missing
          (`pip install jsonschema`).

Every `$ref` is resolved inside SCHEMA itself: a reference to any other
document is an error, never a network fetch. The draft is taken from the
schema's `$schema` (draft-07 when it names none). Formats (`uri`,
`date-time`, ...) are checked where jsonschema's optional format packages
are installed.
"""

import json
import sys

USAGE = "usage: validate_sarif.py SCHEMA SARIF_FILE"


def load_json(path, what):
    """(document, None) or (None, exit status): 2 unreadable, 1 not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f), None
    except OSError as e:
        print(f"cannot read {what} {path}: {e.strerror}", file=sys.stderr)
        return None, 2
    except ValueError as e:
        print(f"{what} {path} is not valid JSON: {e}", file=sys.stderr)
        return None, 1


def refuse_remote(uri):
    raise LookupError(
        f"refusing to fetch remote $ref {uri!r}: the schema must be self-contained"
    )


def offline_kwargs(schema):
    """Keyword arguments that stop the validator from resolving any
    reference outside SCHEMA (jsonschema >= 4.18 uses `referencing`;
    older versions use RefResolver with handlers that refuse)."""
    try:
        from referencing import Registry
    except ImportError:
        from jsonschema import RefResolver

        handlers = {scheme: refuse_remote for scheme in ("http", "https", "ftp", "file")}
        return {"resolver": RefResolver.from_schema(schema, handlers=handlers)}

    def retrieve(uri):
        refuse_remote(uri)

    return {"registry": Registry(retrieve=retrieve)}


def json_path(error):
    path = getattr(error, "json_path", None)
    if path is not None:
        return path
    out = "$"
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def schema_path(error):
    return "#/" + "/".join(str(p) for p in error.absolute_schema_path)


def print_error(error, indent=""):
    print(f"{indent}{json_path(error)}: {error.message}")
    print(f"{indent}    failed {error.validator!r} at {schema_path(error)}")
    # anyOf/oneOf failures carry the reasons of each branch.
    for sub in sorted(error.context or (), key=lambda e: list(e.absolute_schema_path)):
        print_error(sub, indent + "    ")


def main(argv):
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 2
    schema_file, sarif_file = argv[1], argv[2]

    try:
        import jsonschema
        from jsonschema.validators import validator_for
    except ImportError:
        print(
            f"the Python package `jsonschema` is not installed for {sys.executable}; "
            "run `pip install jsonschema`",
            file=sys.stderr,
        )
        return 2

    schema, status = load_json(schema_file, "schema")
    if status is not None:
        return 2
    cls = validator_for(schema, default=jsonschema.Draft7Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        print(f"schema {schema_file} is not a valid {cls.__name__} schema: {e.message}", file=sys.stderr)
        return 2

    instance, status = load_json(sarif_file, "SARIF file")
    if status is not None:
        return status

    format_checker = getattr(cls, "FORMAT_CHECKER", None) or jsonschema.FormatChecker()
    validator = cls(schema, format_checker=format_checker, **offline_kwargs(schema))
    try:
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    except Exception as e:  # an unresolvable $ref and the like
        print(f"could not validate {sarif_file}: {e}", file=sys.stderr)
        return 2

    if errors:
        print(f"{sarif_file}: {len(errors)} schema violation(s) ({cls.__name__}, {schema_file}):")
        for error in errors:
            print_error(error, "  ")
        return 1
    print(f"{sarif_file}: valid ({cls.__name__}, {schema_file})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
