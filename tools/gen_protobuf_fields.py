#!/usr/bin/env python3
"""Generates src/protobuf_fields.rs from the Kubernetes Go API types.

Go's protobuf marshaller writes every plain field, zero or not, and a pointer
field only when set; its JSON encoder omits a zero `omitempty` plain field but
prints a set pointer and a plain field without `omitempty`. The .proto files
say neither, so this lists, per proto message, the fields whose zero value
Kubernetes prints: pointer fields and plain fields without `omitempty`.

It also lists the embedded (`json:",inline"`) structs, which protos show as a
field, and the fields whose JSON name is not their proto name.

Usage: gen_protobuf_fields.py TAG API APIMACHINERY APIEXTENSIONS KUBE_AGGREGATOR > src/protobuf_fields.rs
where each repository argument is a git directory of that kubernetes/* repo
(e.g. a bare clone) holding TAG (e.g. v0.33.13, the Kubernetes 1.33 types).
"""
import re
import subprocess
import sys

STRUCT = re.compile(r"^type (\w+) struct \{")
STRING_TYPE = re.compile(r"^type (\w+) string\b", re.M)
FIELD = re.compile(r"^\s+(\w+)\s+(\S+)\s+`([^`]*)`")
EMBEDDED = re.compile(r"^\s+(\*?[\w.]+)\s+`([^`]*)`")


def files(repo, tag):
    out = subprocess.run(["git", "-C", repo, "ls-tree", "-r", "--name-only", tag],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def show(repo, tag, path):
    return subprocess.run(["git", "-C", repo, "show", f"{tag}:{path}"],
                          capture_output=True, text=True, check=True).stdout


def string_types(repos, tag):
    """Names of the Go types the repositories define as `string` (e.g. `UID`, `Protocol`)."""
    names = set()
    for repo in repos:
        for path in files(repo, tag):
            if path.endswith(".go") and not path.endswith("_test.go") and "/testing/" not in path:
                names.update(STRING_TYPE.findall(show(repo, tag, path)))
    return names


def is_scalar(go_type, wire, strings):
    """Whether a Go field is a proto scalar (number, bool, string or bytes)."""
    base = go_type.lstrip("*").split(".")[-1]  # `types.UID` -> `UID`
    builtin = {"bool", "string", "[]byte", "int", "int32", "int64", "uint32", "uint64", "float32", "float64"}
    return wire == "varint" or base in builtin or base in strings


def scan(repo, tag, package_of, strings, tables):
    """Adds the repository's fields to `tables` (print_zero, inline, renamed)."""
    for path in files(repo, tag):
        package = package_of(path)
        if package is None or not path.endswith(".go") or path.endswith("_test.go"):
            continue
        message = None
        for line in show(repo, tag, path).splitlines():
            m = STRUCT.match(line)
            if m:
                message = m.group(1)
                continue
            if line.startswith("}"):
                message = None
                continue
            m = FIELD.match(line) or EMBEDDED.match(line)
            if not message or not m or 'protobuf:"' not in line:
                continue
            if m.re is FIELD:
                go_name, go_type, tag_text = m.groups()
            else:
                go_type, tag_text = m.groups()
                go_name = go_type.lstrip("*").split(".")[-1]
            wire = re.search(r'protobuf:"([a-z0-9]+),', tag_text)
            named = re.search(r'protobuf:"[^"]*name=([^,"]+)', tag_text)
            # go-to-protobuf names a field lowerCamel after Go unless told otherwise.
            proto = named.group(1) if named else go_name[:1].lower() + go_name[1:]
            json_tag = re.search(r'json:"([^"]*)"', tag_text)
            if not json_tag or json_tag.group(1).startswith("-"):
                continue
            json_name, *options = json_tag.group(1).split(",")
            key = (f"{package}.{message}", proto)
            if "inline" in options and not json_name:
                tables["inline"].add(key)
                continue
            if json_name and json_name != proto:
                tables["renamed"].add(key + (json_name,))
            if is_scalar(go_type, wire.group(1) if wire else "", strings) and (
                go_type.startswith("*") or "omitempty" not in options
            ):
                tables["print_zero"].add(key)


def under(prefix, root, exclude=()):
    """package_of for files under ROOT/<group>/<version>/ (types*.go only)."""
    def package_of(path):
        parts = path.split("/")
        if not path.startswith(root) or not parts[-1].startswith("types") or any(x in path for x in exclude):
            return None
        rel = parts[len(root.strip("/").split("/")) if root else 0:-1]
        return ".".join([prefix] + rel)
    return package_of


def main():
    tag, api, apimachinery, apiextensions, aggregator = sys.argv[1:6]
    tables = {"print_zero": set(), "inline": set(), "renamed": set()}
    strings = string_types([api, apimachinery, apiextensions, aggregator], tag)
    scan(api, tag, under("api", "", exclude=("/testing/", "/fuzzer/")), strings, tables)
    meta = under("apimachinery.pkg.apis", "pkg/apis/", exclude=("/internalversion", "testapigroup"))
    scan(apimachinery, tag, meta, strings, tables)
    runtime = lambda p: "apimachinery.pkg.runtime" if p == "pkg/runtime/types.go" else None  # noqa: E731
    scan(apimachinery, tag, runtime, strings, tables)
    extensions = under("apiextensions_apiserver.pkg.apis", "pkg/apis/", exclude=("apiextensions/types",))
    scan(apiextensions, tag, extensions, strings, tables)
    scan(aggregator, tag, under("kube_aggregator.pkg.apis", "pkg/apis/"), strings, tables)

    print(f"//! Generated by tools/gen_protobuf_fields.py from the Kubernetes {tag} Go API types; do not edit.")
    print("//!")
    print("//! What Go's JSON encoding of the API types does that the `.proto` files do not")
    print("//! say. Entries are (`package.Message`, proto field name), packages without")
    print("//! `k8s.io.`, sorted for binary search.")
    print()
    print("/// Fields whose zero value Kubernetes prints: Go pointers and plain fields")
    print("/// without `omitempty` (number, bool, string and bytes fields only).")
    print("pub(super) const PRINT_ZERO: &[(&str, &str)] = &[")
    for message, field in sorted(tables["print_zero"]):
        print(f'    ("{message}", "{field}"),')
    print("];")
    print()
    print("/// Embedded Go structs (`json:\",inline\"`): their fields belong to the embedding object.")
    print("pub(super) const INLINE: &[(&str, &str)] = &[")
    for message, field in sorted(tables["inline"]):
        print(f'    ("{message}", "{field}"),')
    print("];")
    print()
    print("/// Fields whose JSON name is not their proto name: (message, proto name, JSON name).")
    print("pub(super) const RENAMED: &[(&str, &str, &str)] = &[")
    for message, field, json_name in sorted(tables["renamed"]):
        print(f'    ("{message}", "{field}", "{json_name}"),')
    print("];")


if __name__ == "__main__":
    main()
