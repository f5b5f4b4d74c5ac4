#!/usr/bin/env python3
"""Checks docs/openapi.yaml: valid YAML, an OpenAPI 3 document with info and
paths, every operation with responses, and every $ref resolving inside the
file. Run by the test suite (tests/web.rs); needs Debian's python3-yaml.
Usage: check-openapi.py FILE"""
import sys

import yaml


def refs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                out.append(v)
            else:
                refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def resolve(doc, ref):
    if not ref.startswith("#/"):
        return False
    node = doc
    for part in ref[2:].split("/"):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def main(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    problems = []
    if not str(doc.get("openapi", "")).startswith("3."):
        problems.append("openapi: not a 3.x document")
    for key in ("info", "paths"):
        if not isinstance(doc.get(key), dict):
            problems.append(f"{key}: missing")
    for p, item in (doc.get("paths") or {}).items():
        for method, op in item.items():
            if method in ("get", "post", "put", "delete", "patch") and not op.get("responses"):
                problems.append(f"{method.upper()} {p}: no responses")
    found = []
    refs(doc, found)
    problems += [f"$ref {r} does not resolve" for r in sorted(set(found)) if not resolve(doc, r)]
    for p in problems:
        print(f"{path}: {p}", file=sys.stderr)
    print(f"{path}: {len(doc.get('paths') or {})} paths, {len(found)} refs, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
