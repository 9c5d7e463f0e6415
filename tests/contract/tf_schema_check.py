#!/usr/bin/env python3
"""Offline schema and reference check of a Terraform configuration.

Stands in for `terraform validate`, which cannot run here (no terraform
binary, no provider downloads). Parses every .tf file of a root module and of
the local modules it calls (python-hcl2, the parser checkov uses) and checks
them against tests/contract/provider_schema.json, the schema of
hashicorp/aws 6.25.0 and hashicorp/random 3.7.2 derived from the CDKTF
prebuilt bindings (see gen_provider_schema.py):

- every resource and data source type exists in the provider schema;
- every argument and nested block name (also inside `dynamic` blocks) exists
  for its type, at every nesting level;
- every required argument and required block is set;
- every module call passes only variables the module declares and every
  variable the module declares without a default;
- every reference resolves: var.X, local.X, module.M.OUTPUT, TYPE.NAME.ATTR
  and data.TYPE.NAME.ATTR (ATTR must be an argument or attribute of TYPE);
- house style: every variable has a type and a description, every output a
  description, every module has main.tf, variables.tf, outputs.tf, versions.tf.

Usage: tf_schema_check.py [DIR]   (default: terraform/). Prints each finding
and a last line "tf-schema-check: ..., N findings"; exits 1 when N > 0.
"""
import json
import re
import sys
from pathlib import Path

import hcl2

HERE = Path(__file__).resolve().parent
SCHEMA = json.loads((HERE / "provider_schema.json").read_text())
META_RESOURCE = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
META_MODULE = {"source", "version", "count", "for_each", "depends_on", "providers"}
POSITION = {"__start_line__", "__end_line__"}
BUILTIN_ROOTS = {"each", "count", "path", "self", "terraform"}
REF_RE = re.compile(
    r"(?<![\w.\"$-])(var|local|module|data|[a-z][a-z0-9]*_[a-z0-9_]+)"
    r"((?:\.[A-Za-z_][\w-]*(?:\[[^\]]*\])?){1,3})"
)
STYLE_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf")


def unwrap(value):
    """python-hcl2 wraps each attribute value in a one-element list."""
    if isinstance(value, list) and len(value) == 1 and not isinstance(value[0], dict):
        return value[0]
    return value


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in POSITION:
                yield from strings(v)


class Module:
    def __init__(self, path, relpath):
        self.path = path
        self.files = sorted(path.glob("*.tf"))
        self.variables, self.locals, self.outputs = {}, {}, {}
        self.resources, self.data, self.calls = {}, {}, {}
        self.bodies = []  # (where, body) for reference scanning
        for f in self.files:
            with f.open() as fh:
                doc = hcl2.load(fh)
            rel = relpath(f)
            for block in doc.get("variable", []):
                for name, body in block.items():
                    self.variables[name] = (f, body)
                    self.bodies.append((f"{rel}: variable {name}", body))
            for block in doc.get("locals", []):
                for name, body in block.items():
                    if name not in POSITION:
                        self.locals[name] = body
                self.bodies.append((f"{rel}: locals", block))
            for block in doc.get("output", []):
                for name, body in block.items():
                    self.outputs[name] = (f, body)
                    self.bodies.append((f"{rel}: output {name}", body))
            for block in doc.get("module", []):
                for name, body in block.items():
                    self.calls[name] = (f, body)
                    self.bodies.append((f"{rel}: module {name}", body))
            for kind, table in (("resource", self.resources), ("data", self.data)):
                for block in doc.get(kind, []):
                    for rtype, named in block.items():
                        for name, body in named.items():
                            table[(rtype, name)] = (f, body)
                            self.bodies.append((f"{rel}: {kind} {rtype}.{name}", body))


class Checker:
    def __init__(self, root):
        self.root = root.resolve()
        self.findings = []
        self.modules = {}
        self.counts = {"modules": 0, "resources": 0, "references": 0}

    def find(self, where, message):
        self.findings.append(f"{where}: {message}")

    def rel(self, path):
        try:
            return Path(path).resolve().relative_to(self.root.parent)
        except ValueError:
            return path

    def load(self, path):
        path = path.resolve()
        if path not in self.modules:
            self.modules[path] = Module(path, self.rel)
            for _, (_, body) in self.modules[path].calls.items():
                source = unwrap(body.get("source"))
                if isinstance(source, str) and source.startswith("."):
                    target = (path / source).resolve()
                    if target.is_dir():
                        self.load(target)
        return self.modules[path]

    # ---- arguments and blocks

    def check_block(self, where, body, schema):
        present = set()
        for key, value in body.items():
            if key in POSITION:
                continue
            if key == "dynamic":
                for dyn in value:
                    for label, dbody in dyn.items():
                        present.add(label)
                        if label not in schema or schema[label]["block"] is None:
                            self.find(where, f"dynamic \"{label}\": no such block")
                            continue
                        for content in dbody.get("content", []):
                            self.check_block(f"{where} > {label}", content, schema[label]["block"])
                continue
            present.add(key)
            if key not in schema:
                self.find(where, f"unknown argument or block \"{key}\"")
                continue
            nested = schema[key]["block"]
            if nested is not None and isinstance(value, list):
                for item in value:
                    if isinstance(item, dict):
                        self.check_block(f"{where} > {key}", item, nested)
        for name, arg in schema.items():
            if arg["required"] and name not in present:
                self.find(where, f"required argument or block \"{name}\" is missing")

    def check_module(self, mod):
        where0 = self.rel(mod.path)
        self.counts["modules"] += 1
        if mod.path != self.root:
            for f in STYLE_FILES:
                if not (mod.path / f).exists():
                    self.find(where0, f"house style: no {f}")
        for name, (f, body) in mod.variables.items():
            for need in ("type", "description"):
                if need not in body:
                    self.find(f"{self.rel(f)}: variable {name}", f"house style: no {need}")
        for name, (f, body) in mod.outputs.items():
            if "description" not in body:
                self.find(f"{self.rel(f)}: output {name}", "house style: no description")
        for kind, table in (("resource", mod.resources), ("data", mod.data)):
            for (rtype, name), (f, body) in table.items():
                self.counts["resources"] += 1
                where = f"{self.rel(f)}: {kind} \"{rtype}\" \"{name}\""
                schema = SCHEMA[kind].get(rtype)
                if schema is None:
                    self.find(where, f"unknown {kind} type for hashicorp/aws 6.x / hashicorp/random 3.x (or not in provider_schema.json: regenerate it)")
                    continue
                body = {k: v for k, v in body.items() if k not in META_RESOURCE}
                self.check_block(where, body, schema["arguments"])
        for name, (f, body) in mod.calls.items():
            where = f"{self.rel(f)}: module \"{name}\""
            target = self.target(mod, body)
            if target is None:
                self.find(where, f"source {unwrap(body.get('source'))!r} is not a local module directory")
                continue
            passed = {k for k in body if k not in META_MODULE and k not in POSITION}
            for k in sorted(passed - set(target.variables)):
                self.find(where, f"module {self.rel(target.path)} has no variable \"{k}\"")
            for v, (_, vbody) in target.variables.items():
                if "default" not in vbody and v not in passed:
                    self.find(where, f"required variable \"{v}\" of {self.rel(target.path)} is not set")
        for where, body in mod.bodies:
            self.check_references(mod, where, body)

    def target(self, mod, body):
        source = unwrap(body.get("source"))
        if isinstance(source, str) and source.startswith("."):
            return self.modules.get((mod.path / source).resolve())
        return None

    # ---- references

    def check_references(self, mod, where, body):
        seen = set()
        for text in strings(body):
            if "${" not in text:
                continue
            for m in REF_RE.finditer(text):
                root = m.group(1)
                # Names only: an index may hold dots itself (this[each.key].arn).
                parts = re.findall(r"\.([A-Za-z_][\w-]*)(?:\[[^\]]*\])?", m.group(2))
                ref = ".".join([root] + parts)
                if ref in seen:
                    continue
                seen.add(ref)
                self.resolve(mod, where, root, parts, ref)

    def resolve(self, mod, where, root, parts, ref):
        if root in BUILTIN_ROOTS:
            return
        self.counts["references"] += 1
        if root == "var":
            if parts[0] not in mod.variables:
                self.find(where, f"reference {ref}: no variable \"{parts[0]}\"")
        elif root == "local":
            if parts[0] not in mod.locals:
                self.find(where, f"reference {ref}: no local \"{parts[0]}\"")
        elif root == "module":
            call = mod.calls.get(parts[0])
            if call is None:
                self.find(where, f"reference {ref}: no module \"{parts[0]}\"")
            elif len(parts) > 1:
                target = self.target(mod, call[1])
                if target is not None and parts[1] not in target.outputs:
                    self.find(where, f"reference {ref}: module {self.rel(target.path)} has no output \"{parts[1]}\"")
        elif root == "data":
            if len(parts) < 2:
                self.find(where, f"reference {ref}: incomplete data reference")
                return
            self.resolve_resource(mod.data, SCHEMA["data"], where, parts[0], parts[1], parts[2:], ref)
        elif root in SCHEMA["resource"] or root.startswith(("aws_", "random_")):
            self.resolve_resource(mod.resources, SCHEMA["resource"], where, root, parts[0], parts[1:], ref)
        else:
            self.counts["references"] -= 1  # an iterator or function-local name, not a reference

    def resolve_resource(self, table, schema, where, rtype, name, rest, ref):
        if (rtype, name) not in table:
            self.find(where, f"reference {ref}: no {rtype} \"{name}\" in this module")
            return
        if rest and rtype in schema and rest[0] not in schema[rtype]["attributes"]:
            self.find(where, f"reference {ref}: {rtype} has no attribute \"{rest[0]}\"")

    def run(self):
        self.load(self.root)
        for mod in self.modules.values():
            self.check_module(mod)
        return self.findings


def main(argv):
    root = Path(argv[1]) if len(argv) > 1 else HERE.parents[1] / "terraform"
    checker = Checker(root)
    findings = checker.run()
    for f in findings:
        print(f)
    c = checker.counts
    versions = ", ".join(f"{k} {v['version']}" for k, v in sorted(SCHEMA["providers"].items()))
    print(
        f"tf-schema-check: {root} against {versions}: {c['modules']} modules, "
        f"{c['resources']} resources/data sources, {c['references']} references, {len(findings)} findings"
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
