#!/usr/bin/env python3
"""Physical names of the name-bearing resources of a Terraform configuration.

`terraform plan` would show these names, but it cannot run here (no provider
downloads, no AWS). This evaluates them from the files: it parses the root
module and the local modules it calls (python-hcl2, as checkov does), binds
each module call's inputs, and evaluates the name argument of every resource
whose type carries a physical name (queues, functions, roles, log groups,
alarms, buckets, ...), expanding `count` and `for_each` (over maps and
sets) where it can resolve them. The root variables take their defaults (project "gender",
environment "dev"), so the names are those of a default stack; a name that
repeats there repeats in every stack.

Supported expressions: references (var., local., each.key/value, module.M.O
and data.T.N.A as opaque placeholders, TYPE.NAME.name/id/... of a resource in
the same module), string templates, and the functions replace, lower, upper,
trimsuffix, trimprefix, tostring, coalesce and format with %s. Anything else
makes the name unresolved, which the contract test reports: extend this file
rather than let a name go unchecked.

Usage: tf_names.py [DIR]  (default terraform/): prints every name, then the
names used twice and unresolved names; exits 1 when there are any.
"""
import re
import sys
from pathlib import Path

import hcl2

HERE = Path(__file__).resolve().parent

# Resource type -> (name argument, scope argument or None). A name must be
# unique within its type (and scope): per account and region for most, per
# account for IAM roles, globally for buckets.
NAME_ARGS = {
    "aws_sqs_queue": ("name", None),
    "aws_sns_topic": ("name", None),
    "aws_lambda_function": ("function_name", None),
    "aws_iam_role": ("name", None),
    "aws_iam_role_policy": ("name", "role"),
    "aws_cloudwatch_log_group": ("name", None),
    "aws_cloudwatch_log_stream": ("name", "log_group_name"),
    "aws_cloudwatch_metric_alarm": ("alarm_name", None),
    "aws_cloudwatch_event_rule": ("name", None),
    "aws_s3_bucket": ("bucket", None),
    "aws_s3_bucket_metric": ("name", "bucket"),
    "aws_kinesis_stream": ("name", None),
    "aws_kinesis_firehose_delivery_stream": ("name", None),
    "aws_dynamodb_table": ("name", None),
    "aws_apigatewayv2_api": ("name", None),
    "aws_glue_catalog_database": ("name", None),
    "aws_glue_catalog_table": ("name", "database_name"),
    "aws_ssm_parameter": ("name", None),
    "aws_lambda_permission": ("statement_id", "function_name"),
    "aws_athena_workgroup": ("name", None),
}
# Attributes of a resource that are its physical name (for references such as
# aws_iam_role.this.id or aws_cloudwatch_log_group.this.name).
NAME_ATTRS = {"name", "id", "function_name", "bucket", "alarm_name"}
POSITION = {"__start_line__", "__end_line__"}


class Unresolved(Exception):
    pass


def unwrap(value):
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


# ------------------------------------------------------------------ expressions


def split_template(text):
    """[("lit", s) | ("expr", s)] of a string with ${...} interpolations."""
    parts, i, lit = [], 0, []
    while i < len(text):
        if text.startswith("$${", i):
            lit.append("${")
            i += 3
        elif text.startswith("${", i):
            if lit:
                parts.append(("lit", "".join(lit)))
                lit = []
            j = matching_brace(text, i + 1)
            parts.append(("expr", text[i + 2 : j]))
            i = j + 1
        else:
            lit.append(text[i])
            i += 1
    if lit:
        parts.append(("lit", "".join(lit)))
    return parts


def matching_brace(text, start):
    """Index of the } closing the { at start, skipping strings."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c in "\"'":
            i = end_of_string(text, i)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise Unresolved(f"unbalanced braces in {text!r}")


def end_of_string(text, start):
    """Index just past the string literal starting at start (nested ${} allowed)."""
    quote, i = text[start], start + 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if quote == '"' and text.startswith("${", i):
            i = matching_brace(text, i + 1) + 1
            continue
        if c == quote:
            return i + 1
        i += 1
    raise Unresolved(f"unterminated string in {text!r}")


TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<ref>[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*|\[\d+\])*)|(?P<punct>==|!=|[(),?:]))"
)
LITERALS = {"true": True, "True": True, "false": False, "False": False, "null": None, "None": None}


class Parser:
    """Primary expressions and function calls, nothing else."""

    def __init__(self, text, ev):
        self.text, self.i, self.ev = text, 0, ev

    def parse(self):
        value = self.conditional()
        if self.text[self.i :].strip():
            raise Unresolved(f"unsupported expression {self.text!r}")
        return value

    def punct(self, *allowed):
        m = TOKEN.match(self.text, self.i)
        if m and m.group("punct") in allowed:
            self.i = m.end()
            return m.group("punct")
        return None

    def conditional(self):
        """a [== b | != b] [? c : d]"""
        value = self.expr()
        op = self.punct("==", "!=")
        if op:
            other = self.expr()
            value = (value == other) if op == "==" else (value != other)
        if self.punct("?"):
            if not isinstance(value, bool):
                raise Unresolved(f"condition is not a bool in {self.text!r}")
            yes = self.conditional()
            if not self.punct(":"):
                raise Unresolved(f"unsupported expression {self.text!r}")
            no = self.conditional()
            return yes if value else no
        return value

    def expr(self):
        rest = self.text[self.i :]
        stripped = rest.lstrip()
        self.i += len(rest) - len(stripped)
        if stripped[:1] in ("\"", "'"):
            end = end_of_string(self.text, self.i)
            body = self.text[self.i + 1 : end - 1]
            self.i = end
            if stripped[0] == "'":
                return body
            return self.ev.template(body.replace('\\"', '"').replace("\\\\", "\\"))
        m = TOKEN.match(self.text, self.i)
        if not m or m.group("punct"):
            raise Unresolved(f"unsupported expression {self.text!r}")
        self.i = m.end()
        if m.group("num"):
            return float(m.group("num")) if "." in m.group("num") else int(m.group("num"))
        ref = m.group("ref")
        if ref in LITERALS:
            return LITERALS[ref]
        after = TOKEN.match(self.text, self.i)
        if after and after.group("punct") == "(":
            self.i = after.end()
            args = []
            while True:
                close = TOKEN.match(self.text, self.i)
                if close and close.group("punct") == ")":
                    self.i = close.end()
                    break
                args.append(self.expr())
                sep = TOKEN.match(self.text, self.i)
                if not sep or sep.group("punct") not in (",", ")"):
                    raise Unresolved(f"unsupported expression {self.text!r}")
                if sep.group("punct") == ",":
                    self.i = sep.end()
            return call(ref, args)
        return self.ev.reference(ref)


def call(fn, args):
    s = [a if isinstance(a, str) else str(a) for a in args]
    if fn == "replace" and len(s) == 3 and not s[1].startswith("/"):
        return s[0].replace(s[1], s[2])
    if fn in ("lower", "upper", "tostring") and len(s) == 1:
        return {"lower": str.lower, "upper": str.upper, "tostring": str}[fn](s[0])
    if fn == "trimsuffix" and len(s) == 2:
        return s[0][: -len(s[1])] if s[1] and s[0].endswith(s[1]) else s[0]
    if fn == "trimprefix" and len(s) == 2:
        return s[0][len(s[1]) :] if s[0].startswith(s[1]) else s[0]
    if fn == "coalesce":
        for a in args:
            if a not in (None, ""):
                return a
        raise Unresolved("coalesce of nothing")
    if fn == "format" and s and "%" not in s[0].replace("%s", ""):
        return s[0] % tuple(s[1:])
    raise Unresolved(f"function {fn}() is not supported by tf_names.py")


# ------------------------------------------------------------------ modules


class Module:
    def __init__(self, path, address, inputs):
        self.path, self.address, self.inputs = path, address, inputs
        self.variables, self.locals, self.resources, self.calls = {}, {}, {}, {}
        for f in sorted(path.glob("*.tf")):
            with f.open() as fh:
                doc = hcl2.load(fh)
            for block in doc.get("variable", []):
                self.variables.update(block)
            for block in doc.get("locals", []):
                self.locals.update({k: v for k, v in block.items() if k not in POSITION})
            for block in doc.get("module", []):
                self.calls.update(block)
            for block in doc.get("resource", []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        self.resources[(rtype, name)] = body

    def var(self, name):
        if name in self.inputs:
            return self.inputs[name]()
        if name in self.variables and "default" in self.variables[name]:
            return Evaluator(self).value(unwrap(self.variables[name]["default"]))
        raise Unresolved(f"{self.address or 'root'}: var.{name} has no value")


class Evaluator:
    def __init__(self, module, each=None):
        self.module, self.each = module, each

    def value(self, v):
        if isinstance(v, str):
            return self.template(v)
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, dict):
            return {k: self.value(x) for k, x in v.items() if k not in POSITION}
        return v

    def template(self, text):
        parts = split_template(text)
        if len(parts) == 1 and parts[0][0] == "expr":
            return Parser(parts[0][1], self).parse()
        out = []
        for kind, s in parts:
            out.append(s if kind == "lit" else str(Parser(s, self).parse()))
        return "".join(out)

    def reference(self, ref):
        parts = re.split(r"\.", ref)
        root = parts[0]
        if root == "var":
            value = self.module.var(parts[1])
            for attr in parts[2:]:
                if not isinstance(value, dict) or attr not in value:
                    raise Unresolved(f"{ref}: no attribute {attr}")
                value = value[attr]
            return value
        if root == "local":
            if parts[1] not in self.module.locals:
                raise Unresolved(f"{ref}: no such local")
            return Evaluator(self.module).value(unwrap(self.module.locals[parts[1]]))
        if root == "each":
            if self.each is None or self.each[0] == "#":
                raise Unresolved(f"{ref} outside for_each")
            return self.each[0] if parts[1] == "key" else self.each[1]
        if root == "count":
            if self.each is None or self.each[0] != "#":
                raise Unresolved(f"{ref} outside count")
            return self.each[1]
        if root in ("module", "data", "path"):
            return "<" + ref + ">"  # opaque, but the same reference gives the same text
        if len(parts) >= 3 and (parts[0], parts[1]) in self.module.resources:
            if parts[2] in NAME_ATTRS and parts[0] in NAME_ARGS:
                body = self.module.resources[(parts[0], parts[1])]
                return Evaluator(self.module).value(unwrap(body[NAME_ARGS[parts[0]][0]]))
            return "<" + ref + ">"
        raise Unresolved(f"reference {ref} is not supported by tf_names.py")


def instances(module, body):
    """[(each or None)] for a resource or module block."""
    if "count" in body:
        count = Evaluator(module).value(unwrap(body["count"]))
        if not isinstance(count, int):
            raise Unresolved(f"count {body['count']!r} is not a number")
        return [("#", i) for i in range(count)]
    if "for_each" not in body:
        return [None]
    value = Evaluator(module).value(unwrap(body["for_each"]))
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list):
        return [(v, v) for v in value]
    raise Unresolved(f"for_each {body['for_each']!r} is not a map or set")


def load(path, address="", inputs=None):
    module = Module(path, address, inputs or {})
    children = []
    for name, body in module.calls.items():
        source = unwrap(body["source"])
        if not (isinstance(source, str) and source.startswith(".")):
            continue
        bound = {
            k: (lambda v=unwrap(v): Evaluator(module).value(v))
            for k, v in body.items()
            if k not in POSITION and k not in ("source", "version", "providers", "depends_on", "count", "for_each")
        }
        children.append(load((path / source).resolve(), f"{address}module.{name}.", bound))
    return module, children


def physical_names(root):
    """({(type, scope, name): [addresses]}, [(address, reason)])."""
    names, unresolved = {}, []

    def visit(module, children):
        for (rtype, rname), body in module.resources.items():
            if rtype not in NAME_ARGS:
                continue
            address = f"{module.address}{rtype}.{rname}"
            name_arg, scope_arg = NAME_ARGS[rtype]
            try:
                for each in instances(module, body):
                    ev = Evaluator(module, each)
                    key = address if each is None else f"{address}[{each[1] if each[0] == '#' else repr(each[0])}]"
                    if name_arg not in body:
                        unresolved.append((key, f"no {name_arg} (generated name?)"))
                        continue
                    name = ev.value(unwrap(body[name_arg]))
                    scope = ev.value(unwrap(body[scope_arg])) if scope_arg else None
                    names.setdefault((rtype, scope, name), []).append(key)
            except Unresolved as e:
                unresolved.append((address, str(e)))
        for child in children:
            visit(*child)

    visit(*load(Path(root).resolve()))
    return names, unresolved


def collisions(names):
    return {k: v for k, v in names.items() if len(v) > 1}


def main(argv):
    root = Path(argv[1]) if len(argv) > 1 else HERE.parents[1] / "terraform"
    names, unresolved = physical_names(root)
    for (rtype, scope, name), addresses in sorted(names.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), kv[0][2])):
        where = f" (in {scope})" if scope else ""
        print(f"{rtype:40} {name}{where}  <- {', '.join(addresses)}")
    dups = collisions(names)
    for (rtype, scope, name), addresses in dups.items():
        print(f"DUPLICATE {rtype} {name!r}: {', '.join(addresses)}")
    for address, reason in unresolved:
        print(f"UNRESOLVED {address}: {reason}")
    print(f"tf_names: {len(names)} physical names, {len(dups)} collisions, {len(unresolved)} unresolved")
    return 1 if dups or unresolved else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
