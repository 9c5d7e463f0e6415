#!/usr/bin/env python3
"""Derives tests/contract/provider_schema.json, the offline provider schema that
tf_schema_check.py checks terraform/ against, from the CDKTF prebuilt provider
bindings, which are generated from the providers' own schemas:

  @cdktf/provider-aws 21.22.1     = hashicorp/aws    6.25.0
  @cdktf/provider-random 12.0.1   = hashicorp/random 3.7.2

For each resource and data source type that terraform/ (and the test fixtures)
use, it reads lib/<type>/index.js (argument and nested block names as the
binding serialises them: `synthesizeAttributes` and the `xToTerraform`
functions; computed attributes from `getXAttribute('name')`) and index.d.ts
(which arguments are required: `readonly name: T` without `?`).

Regenerate after using a new resource type (needs npm and the registry):

  mkdir -p /tmp/cdktf && cd /tmp/cdktf
  npm pack @cdktf/provider-aws@21.22.1 @cdktf/provider-random@12.0.1
  mkdir aws random
  tar xzf cdktf-provider-aws-21.22.1.tgz -C aws
  tar xzf cdktf-provider-random-12.0.1.tgz -C random
  python3 tests/contract/gen_provider_schema.py /tmp/cdktf/aws/package /tmp/cdktf/random/package
"""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "provider_schema.json"
TYPE_RE = re.compile(r'^\s*(resource|data)\s+"([a-z0-9_]+)"', re.M)


def used_types():
    found = set()
    for base in (ROOT / "terraform", ROOT / "tests/contract/fixtures"):
        for tf in base.rglob("*.tf"):
            found.update(TYPE_RE.findall(tf.read_text()))
    return sorted(found)


def lib_dir(packages, kind, tf_type):
    provider, rest = tf_type.split("_", 1)
    name = rest.replace("_", "-")
    if kind == "data":
        name = f"data-{provider}-{name}"
    for pkg in packages:
        meta = json.loads((pkg / "package.json").read_text())
        if meta["name"].endswith(f"/provider-{provider}"):
            return pkg / "lib" / name, meta
    raise SystemExit(f"no package for provider {provider}")


def function_body(js, start):
    """The text of the `{ ... }` starting at or after index start."""
    i = js.index("{", start)
    depth = 0
    for j in range(i, len(js)):
        if js[j] == "{":
            depth += 1
        elif js[j] == "}":
            depth -= 1
            if depth == 0:
                return js[i : j + 1]
    raise ValueError("unbalanced")


def required_props(dts, interface):
    m = re.search(r"export interface %s (?:extends [\w.]+ )?\{" % re.escape(interface), dts)
    if not m:
        return None
    body = function_body(dts, m.start())
    return {
        name: opt != "?"
        for name, opt in re.findall(r"readonly (\w+)(\??):", body)
    }


ENTRY_RE = re.compile(r"^\s*(\w+): (.*?)\(?(?:this\._|struct!?\.)(\w+)", re.M)


def block_schema(js, dts, returned, interface):
    """Arguments of one block: {tf_name: {"required": bool, "block": nested or None}}."""
    req = required_props(dts, interface) or {}
    args = {}
    for line in returned.splitlines():
        m = ENTRY_RE.match(line)
        if not m:
            continue
        tf_name, conv, camel = m.groups()
        nested = None
        fm = re.search(r"\b(\w+)ToTerraform\b", conv)
        if fm and not conv.startswith(f"cdktf.{fm.group(1)}") and f"function {fm.group(1)}ToTerraform(" in js:
            fn = fm.group(1)
            start = js.index(f"function {fn}ToTerraform(")
            body = function_body(js, start)
            ret = body[body.rindex("return {"):]
            nested = block_schema(js, dts, ret, fn[0].upper() + fn[1:])
        args[tf_name] = {"required": bool(req.get(camel, False)), "block": nested}
    return args


def type_schema(packages, kind, tf_type):
    d, meta = lib_dir(packages, kind, tf_type)
    js = (d / "index.js").read_text()
    dts = (d / "index.d.ts").read_text()
    base = "TerraformDataSource" if kind == "data" else "TerraformResource"
    m = re.search(r"^class (\w+) extends cdktf\.%s \{" % base, js, re.M)
    cls = m.group(1)
    assert f'{cls}.tfResourceType = "{tf_type}"' in js, tf_type
    cls_body = function_body(js, m.start())
    synth = cls_body.index("synthesizeAttributes() {")
    returned = function_body(cls_body, cls_body.index("return {", synth))
    args = block_schema(js, dts, returned, f"{cls}Config")
    attributes = sorted(set(re.findall(r"(?:Attribute|interpolationForAttribute)\('(\w+)'\)", cls_body)) | set(args))
    return {"arguments": args, "attributes": attributes}, meta


def main(argv):
    packages = [Path(p) for p in argv[1:]]
    schema = {"generated_by": "tests/contract/gen_provider_schema.py", "providers": {}, "resource": {}, "data": {}}
    for kind, tf_type in used_types():
        try:
            entry, meta = type_schema(packages, kind, tf_type)
        except FileNotFoundError:
            print(f"skipped {kind} {tf_type}: not in the bindings (a planted mistake of a fixture?)")
            continue
        schema[kind][tf_type] = entry
    for pkg in packages:
        meta = json.loads((pkg / "package.json").read_text())
        version = re.search(r"provider version ([\d.]+)", (pkg / "README.md").read_text()).group(1)
        provider = meta["name"].rsplit("provider-", 1)[1]
        schema["providers"][f"hashicorp/{provider}"] = {"version": version, "from": f"{meta['name']}@{meta['version']}"}
    OUT.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    print(f"{OUT.relative_to(ROOT)}: {len(schema['resource'])} resource and {len(schema['data'])} data source types; {schema['providers']}")


if __name__ == "__main__":
    main(sys.argv)
