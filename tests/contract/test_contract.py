#!/usr/bin/env python3
"""Contract between terraform/ and the Rust code, and checks of terraform/ itself.

Runs with plain Python (`python tests/contract/test_contract.py`, last line
"N passed, M failed") or under pytest (every check is a test_ function).

What is derived from the Rust sources (never written down twice):
- the functions: every crate under functions/ and its [[bin]] name;
- the environment each function reads: the string literal (or the &str
  constant) passed to an env helper (`required_env`, `optional_env`,
  `parsed_env`, any `*_env`) or to `std::env::var` in functions/<crate>/src;
- the AWS operations each function makes: the adapters its crate constructs
  (`DynamoProfiles::new`, `S3ObjectStore::new`, `KinesisHitLog::new`,
  `DeadLetters::new`, ...), the port-trait methods of those adapters that
  its code path calls (its own sources, the gender-pipeline functions it
  imports, the whole gender-api Router for http), and the SDK calls
  (`.client.<op>()`) each such method reaches inside crates/aws/src (an
  adapter may span files: DynamoProfiles is dynamodb.rs and the consumer's
  counting.rs), following `self.<fn>(` calls; plus the SDK calls a function
  makes itself (`<client>.<op>()...send()` in its sources, e.g. http's SSM
  GetParameters of its API key and erasure salt);
- what triggers each function: an event source mapping on an SQS queue
  (receive, delete, attributes) or on the Kinesis stream (the reads Lambda
  documents for a mapping), and the mapping's on-failure destination;
- the Router's routes and the DynamoDB key and TTL attribute names.
What is written here: the table from SDK operation to IAM actions, and the
actions that a trigger (not the code) needs.
"""
import re
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "terraform"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import hcl2  # noqa: E402  (python-hcl2 from checkov's bc-python-hcl2, installed by scripts/check-terraform)

# SDK operation -> IAM actions. TransactWriteItems has no IAM action of its
# own: each item of the transaction is authorised as its single-item action
# (derived below from the builders the transaction uses).
SDK_TO_IAM = {
    "put_records": {"kinesis:PutRecords"},
    "get_item": {"dynamodb:GetItem"},
    "update_item": {"dynamodb:UpdateItem"},
    "scan": {"dynamodb:Scan"},
    "batch_get_item": {"dynamodb:BatchGetItem"},
    "put_object": {"s3:PutObject"},
    "get_object": {"s3:GetObject"},
    "list_objects_v2": {"s3:ListBucket"},
    "delete_object": {"s3:DeleteObject"},
    "get_parameter": {"ssm:GetParameter"},
    "get_parameters": {"ssm:GetParameters"},
    "put_item": {"dynamodb:PutItem"},
    "delete_item": {"dynamodb:DeleteItem"},
    "send_message": {"sqs:SendMessage"},
    "start_query_execution": {"athena:StartQueryExecution"},
    "get_query_execution": {"athena:GetQueryExecution"},
    "get_query_results": {"athena:GetQueryResults"},
    "stop_query_execution": {"athena:StopQueryExecution"},
    "invoke": {"lambda:InvokeFunction"},
}
TRANSACT_ITEM_TO_IAM = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
# Needed by the runtime and triggers, not by the code's SDK calls.
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
SQS_EVENT_SOURCE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
# What Lambda documents for a Kinesis event source mapping with a standard
# iterator ("Process Amazon Kinesis Data Streams records with Lambda"):
# SubscribeToShard only for enhanced fan-out consumers, which this stack has
# none of; ListStreams is not needed (the mapping names its stream).
KINESIS_EVENT_SOURCE_ACTIONS = {
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
}
# A mapping's on-failure destination is sent to with the function's role.
ON_FAILURE_SQS_ACTIONS = {"sqs:SendMessage"}
ASYNC_DLQ_ACTIONS = {"sqs:SendMessage"}
# Athena runs a query with the caller's permissions: it reads the Glue table
# definitions, lists and reads the objects (s3:ListBucket, s3:GetObject, which
# erase's own reads already need) and writes and reads back the result file.
ATHENA_QUERY_ACTIONS = {"glue:GetDatabase", "glue:GetTable", "s3:GetBucketLocation", "s3:AbortMultipartUpload"}
# Read by crates/lambda, set by Lambda itself from logging_config.
RUNTIME_ENV = {"AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"}
ADAPTERS = {
    "KinesisHitLog": ("kinesis.rs",),
    "S3ObjectStore": ("s3.rs",),
    "DynamoProfiles": ("dynamodb.rs", "counting.rs"),
    "ErasureLog": ("erasure.rs",),
    "ErasureRequests": ("erasure.rs",),
    "CuratedObjects": ("erasure.rs",),
    "AthenaQueries": ("athena.rs",),
    "DeadLetters": ("dead_letter.rs",),
    "SelfInvoke": ("lambda.rs",),
}
# The fields of the adapters that hold SDK clients.
CLIENT_FIELDS = r"(?:client|sqs)"


# ------------------------------------------------------------------ helpers


def unwrap(value):
    """python-hcl2 wraps each attribute value in a one-element list."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def load_tf(directory):
    merged = {}
    for f in sorted(Path(directory).glob("*.tf")):
        with f.open() as fh:
            doc = hcl2.load(fh)
        for key, blocks in doc.items():
            merged.setdefault(key, []).extend(blocks)
    return merged


def named(doc, kind):
    out = {}
    for block in doc.get(kind, []):
        for name, body in block.items():
            out[name] = body
    return out


def typed(doc, kind):
    out = {}
    for block in doc.get(kind, []):
        for rtype, items in block.items():
            for name, body in items.items():
                out[(rtype, name)] = body
    return out


def strip_comments(rust):
    return re.sub(r"//[^\n]*", "", rust)


def fn_bodies(rust):
    """{fn name: body text} for every fn of a Rust file (brace matching)."""
    bodies = {}
    for m in re.finditer(r"\bfn (\w+)\s*(?:<[^>]*>)?\s*\(", rust):
        i = rust.find("{", m.end())
        semi = rust.find(";", m.end())
        if i < 0 or (0 <= semi < i):
            continue  # a declaration without body
        depth = 0
        for j in range(i, len(rust)):
            depth += {"{": 1, "}": -1}.get(rust[j], 0)
            if depth == 0:
                bodies.setdefault(m.group(1), rust[i : j + 1])
                break
    return bodies


def trait_methods(rust, adapter):
    """Methods of `impl Trait for Adapter` blocks, and the `pub` methods of
    `impl Adapter` (functions call some directly, e.g. curate's deduplication)."""
    methods = set()
    for m in re.finditer(r"impl\s+\w+\s+for\s+%s\s*\{" % adapter, rust):
        body = fn_bodies("fn x()" + rust[m.end() - 1 :])["x"]
        methods |= set(re.findall(r"\bfn (\w+)", body))
    for m in re.finditer(r"impl\s+%s\s*\{" % adapter, rust):
        body = fn_bodies("fn x()" + rust[m.end() - 1 :])["x"]
        methods |= set(re.findall(r"\bpub (?:async )?fn (\w+)", body))
    return methods


def strip_test_modules(rust):
    """Drops `#[cfg(test)] mod x { ... }` blocks: test code is not the function's."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", rust)
        if not m:
            return rust
        depth = 0
        for j in range(m.end() - 1, len(rust)):
            depth += {"{": 1, "}": -1}.get(rust[j], 0)
            if depth == 0:
                rust = rust[: m.start()] + rust[j + 1 :]
                break
        else:
            return rust[: m.start()]


def rust_sources(path):
    return {
        p: strip_test_modules(strip_comments(p.read_text()))
        for p in sorted(Path(path).glob("*.rs"))
        if p.name != "tests.rs"
    }


# ------------------------------------------------------------------ facts from the code


def function_crates():
    crates = {}
    for cargo in sorted((ROOT / "functions").glob("*/Cargo.toml")):
        text = cargo.read_text()
        bins = re.findall(r"\[\[bin\]\]\s*\nname\s*=\s*\"([^\"]+)\"", text)
        assert len(bins) == 1, f"{cargo}: expected one [[bin]], found {bins}"
        crates[cargo.parent.name] = bins[0]
    return crates


# An environment read: an env helper (required_env, optional_env, parsed_env,
# ...) or std::env::var / var_os, with a string literal or a constant name as
# its first argument.
ENV_READ = re.compile(r'\b(?:\w+_env|env::var|env::var_os)(?:::<[^>]*>)?\(\s*(?:"([A-Z][A-Z0-9_]*)"|([A-Z][A-Z0-9_]*)\s*[,)])')


def env_names(texts):
    consts = {}
    for text in texts:
        consts.update(re.findall(r'\bconst\s+([A-Z][A-Z0-9_]*)\s*:\s*&(?:\'static\s+)?str\s*=\s*"([A-Z][A-Z0-9_]*)"', text))
    names = set()
    for text in texts:
        for literal, const in ENV_READ.findall(text):
            if literal:
                names.add(literal)
            else:
                assert const in consts, f"environment read through {const}, which is not a &str constant of these sources"
                names.add(consts[const])
    return names


def lambda_env_helpers():
    """{fn of crates/lambda (gender-lambda) that reads the environment itself,
    e.g. dedup_horizon_from_env: the variables it reads}."""
    sources = list(rust_sources(ROOT / "crates/lambda/src").values())
    bodies = fn_bodies("\n".join(sources))
    consts = "\n".join(re.findall(r"\bconst\s+[A-Z][A-Z0-9_]*\s*:\s*&(?:'static\s+)?str\s*=\s*\"[A-Z][A-Z0-9_]*\";", "\n".join(sources)))
    return {name: env_names([consts + body]) for name, body in bodies.items() if env_names([consts + body])}


def env_read(crate):
    """What the function reads: its own env reads, plus those of the
    gender-lambda helpers it calls (gender_lambda::dedup_horizon_from_env())."""
    own = list(rust_sources(ROOT / "functions" / crate / "src").values())
    names = env_names(own)
    text = "\n".join(own)
    imported = set()
    for group in re.findall(r"use gender_lambda::\{([^}]*)\}", text) + re.findall(r"use gender_lambda::(\w+);", text):
        imported |= set(re.findall(r"\w+", group))
    for helper, read in lambda_env_helpers().items():
        if re.search(r"\bgender_lambda::%s\(" % helper, text) or (helper in imported and re.search(r"\b%s\(" % helper, text)):
            names |= read - RUNTIME_ENV
    return names


# A direct SDK call: `<client>.<op>()` followed by builder setters and `.send()`.
SDK_CALL = re.compile(r"\.\s*(\w+)\(\)((?:\s*\.\s*\w+\((?:[^()]|\([^()]*\))*\))*)\s*\.\s*send\(\)")


def direct_sdk_calls(crate):
    """Operations a function crate calls on SDK clients itself (not through an adapter)."""
    ops = set()
    for text in rust_sources(ROOT / "functions" / crate / "src").values():
        if "aws_sdk_" in text:
            ops |= set(m.group(1) for m in SDK_CALL.finditer(text))
    return ops


def adapter_model():
    """adapter -> {trait method -> (sdk ops, conditional)} with transact items expanded."""
    model = {}
    for adapter, files in ADAPTERS.items():
        rust = "\n".join(strip_comments((ROOT / "crates/aws/src" / f).read_text()) for f in files)
        bodies = fn_bodies(rust)
        # Requests made lazily by a named iterator (`stream::iter(Writes {..})`):
        # a body that builds the struct reaches the calls of its Iterator impl.
        iterators = {
            m.group(1): fn_bodies("fn x()" + rust[m.end() - 1 :])["x"]
            for m in re.finditer(r"impl(?:<[^>]*>)?\s+Iterator\s+for\s+(\w+)(?:<[^>]*>)?\s*\{", rust)
        }

        def reach(fn, seen):
            if fn in seen or fn not in bodies:
                return set()
            seen.add(fn)
            body = bodies[fn]
            for name in re.findall(r"\b([A-Z]\w*)\s*\{", body):
                body += iterators.get(name, "")
            ops = set(re.findall(r"\.%s\s*\.(\w+)\(\)" % CLIENT_FIELDS, body))
            # self.f(...) and calls through a field holding another adapter
            # of the same file (self.log.put_pending(...)).
            for callee in re.findall(r"\bself\s*\.\s*(?:\w+\s*\.\s*)?(\w+)\(", body):
                ops |= reach(callee, seen)
            # helpers called as free functions or Self::
            for callee in re.findall(r"\b(?:Self::)?(\w+)\(", body):
                if callee in bodies and callee != fn and callee not in seen and re.search(r"\.%s\b" % CLIENT_FIELDS, bodies[callee]):
                    ops |= reach(callee, seen)
            return ops

        model[adapter] = {
            "methods": {m: reach(m, set()) for m in trait_methods(rust, adapter)},
            "transact_items": set(re.findall(r"\b(Put|Update|Delete|ConditionCheck)::builder\(\)", rust)),
            "no_such_key_is_none": "is_no_such_key" in rust,
        }
    return model


def reach_files(crate):
    """The sources whose calls run in the function: its own, plus the gender-pipeline
    functions it imports, plus (for the Router) every gender-api source."""
    own = rust_sources(ROOT / "functions" / crate / "src")
    files = dict(own)
    text = "\n".join(own.values())
    pipeline = rust_sources(ROOT / "crates/pipeline/src")
    for group in re.findall(r"use gender_pipeline::\{([^}]*)\}", text) + re.findall(r"use gender_pipeline::(\w+);", text):
        for name in re.findall(r"\w+", group):
            for path, src in pipeline.items():
                if re.search(r"pub (?:async )?fn %s\b" % name, src):
                    files[path] = src
    if "gender_api::" in text:
        files.update(rust_sources(ROOT / "crates/api/src"))
    return files


def expected_operations(crate, model):
    """(ops always made, ops made only when KEEP_RAW=false, adapters used)."""
    files = reach_files(crate)
    own = "\n".join(rust_sources(ROOT / "functions" / crate / "src").values())
    # `self.f(` of a fn the crate defines itself is its own call, not an
    # adapter's method of the same name (the consumer's `apply`).
    own_fns = set(fn_bodies(own))
    always, keep_raw_false = set(), set()
    used = {a for a in ADAPTERS if re.search(r"\b%s::new\(" % a, own)}
    for adapter in used:
        for method, ops in model[adapter]["methods"].items():
            for src in files.values():
                for m in re.finditer(r"\.%s\(" % method, src):
                    if method in own_fns and re.search(r"\bself\s*$", src[: m.start()]):
                        continue
                    line_start = src.rfind("\n", 0, m.start())
                    context = src[src.rfind("\n", 0, max(line_start - 1, 0)) : m.start()]
                    if re.search(r"if\s+!\s*(?:self\.)?keep_raw", context):
                        keep_raw_false |= ops
                    else:
                        always |= ops
    always |= direct_sdk_calls(crate)
    return always, keep_raw_false - always, used


def iam_actions(ops, model):
    actions = set()
    for op in ops:
        if op == "transact_write_items":
            actions |= {TRANSACT_ITEM_TO_IAM[i] for i in model["DynamoProfiles"]["transact_items"]}
        else:
            assert op in SDK_TO_IAM, f"SDK operation {op} has no IAM mapping in test_contract.py: add it"
            actions |= SDK_TO_IAM[op]
        if op == "get_object" and (model["S3ObjectStore"]["no_such_key_is_none"] or model["CuratedObjects"]["no_such_key_is_none"]):
            # NoSuchKey (rather than 403) for a missing key needs s3:ListBucket.
            actions.add("s3:ListBucket")
    return actions


# ------------------------------------------------------------------ facts from terraform

ROOT_DOC = load_tf(TF)
LAMBDA_DOC = load_tf(TF / "modules/lambda")
CALLS = named(ROOT_DOC, "module")
LOCALS = {}
for block in ROOT_DOC.get("locals", []):
    LOCALS.update({k: v for k, v in block.items() if not k.startswith("__")})
POLICY_DOCS = {name: body for (t, name), body in typed(ROOT_DOC, "data").items() if t == "aws_iam_policy_document"}


def lambda_calls():
    return {name: body for name, body in CALLS.items() if unwrap(body["source"]) == "./modules/lambda"}


def call_for_binary(binary):
    found = [
        name
        for name, body in lambda_calls().items()
        if unwrap(body["filename"]) == "${local.artifacts_dir}/%s/bootstrap.zip" % binary
    ]
    return found


def statements(doc_body):
    """(actions, resources, gate) per statement; gate = the for_each of a dynamic statement."""
    out = []
    for st in doc_body.get("statement", []):
        out.append((set(unwrap(st.get("actions", [[]]))), unwrap(st.get("resources", [[]])), None))
    for dyn in doc_body.get("dynamic", []):
        for label, body in dyn.items():
            if label != "statement":
                continue
            gate = unwrap(body["for_each"])
            for content in body.get("content", []):
                out.append((set(unwrap(content.get("actions", [[]]))), unwrap(content.get("resources", [[]])), gate))
    return out


def role_statements(call_name):
    """Statements of every policy attached to the function's role."""
    body = CALLS[call_name]
    sts = []
    docs = unwrap(body.get("policy_documents", [{}]))
    for key, ref in (docs or {}).items():
        m = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", ref)
        assert m, f"module {call_name}: policy_documents.{key} = {ref!r} is not a root policy document"
        sts += statements(POLICY_DOCS[m.group(1)])
    lambda_docs = {name: b for (t, name), b in typed(LAMBDA_DOC, "data").items() if t == "aws_iam_policy_document"}
    sts += statements(lambda_docs["logs"])
    if unwrap(body.get("create_dead_letter_queue", [False])) is True:
        sts += statements(lambda_docs["dlq"])
    return sts


def tf_actions(call_name, keep_raw):
    actions = set()
    for acts, _, gate in role_statements(call_name):
        if gate is None:
            actions |= acts
        else:
            assert gate == "${var.keep_raw ? [] : ['delete']}" or gate == '${var.keep_raw ? [] : ["delete"]}', f"unexpected statement gate {gate!r}"
            if not keep_raw:
                actions |= acts
    return actions


def event_source_mappings(call_name):
    """(source kind "sqs" | "kinesis", mapping body, trigger module call name) of
    every event source mapping that invokes the function of module call_name."""
    found = []
    for trigger, body in CALLS.items():
        if unwrap(body.get("function_name")) != "${module.%s.function_name}" % call_name:
            continue
        for (t, _), mapping in typed(load_tf(TF / unwrap(body["source"])), "resource").items():
            if t != "aws_lambda_event_source_mapping":
                continue
            arn = unwrap(mapping["event_source_arn"])
            if arn.startswith("${aws_sqs_queue."):
                kind = "sqs"
            else:
                m = re.fullmatch(r"\$\{var\.(\w+)\}", arn)
                assert m, f"module {trigger}: event source {arn!r} is neither a queue of the module nor an input"
                source = re.fullmatch(r"\$\{module\.(\w+)\.arn\}", unwrap(body[m.group(1)]))
                assert source and unwrap(CALLS[source.group(1)]["source"]) == "./modules/kinesis", (trigger, body[m.group(1)])
                kind = "kinesis"
            found.append((kind, mapping, trigger))
    return found


def trigger_actions(call_name):
    """The actions the function's triggers need of its role."""
    actions = set()
    for kind, mapping, _ in event_source_mappings(call_name):
        actions |= SQS_EVENT_SOURCE_ACTIONS if kind == "sqs" else KINESIS_EVENT_SOURCE_ACTIONS
        for destination in mapping.get("destination_config", []):
            for on_failure in destination.get("on_failure", []):
                assert unwrap(on_failure["destination_arn"]).startswith("${aws_sqs_queue."), on_failure
                actions |= ON_FAILURE_SQS_ACTIONS
    return actions


# ------------------------------------------------------------------ tests

CRATES = function_crates()
MODEL = adapter_model()


def test_every_function_crate_has_one_lambda_pointing_at_its_zip():
    assert set(CRATES) == {"http", "transform", "consumer", "curate", "daily", "erase"}, CRATES
    for crate, binary in CRATES.items():
        calls = call_for_binary(binary)
        assert len(calls) == 1, f"{crate} ({binary}): lambda module calls {calls}"
    assert len(lambda_calls()) == len(CRATES), "a lambda module call without a function crate"
    assert unwrap(LOCALS["artifacts_dir"]) == '${coalesce(var.lambda_artifacts_dir,"${path.root}/../target/lambda")}' or "target/lambda" in unwrap(LOCALS["artifacts_dir"])
    fns = [b for (t, _), b in typed(LAMBDA_DOC, "resource").items() if t == "aws_lambda_function"]
    assert len(fns) == 1, "the lambda module must hold exactly one aws_lambda_function"
    fn = fns[0]
    assert unwrap(fn["filename"]) == "${var.filename}"
    assert unwrap(fn["runtime"]) == "provided.al2023"
    assert unwrap(fn["architectures"]) == ["arm64"]
    assert unwrap(fn["handler"]) == "bootstrap"
    assert unwrap(fn["logging_config"][0]["log_format"]) == "JSON"


def test_environment_variables_are_exactly_those_the_code_reads():
    for crate, binary in CRATES.items():
        call = CALLS[call_for_binary(binary)[0]]
        tf_env = set((unwrap(call.get("environment_variables", [{}])) or {}).keys())
        assert tf_env == env_read(crate), f"{crate}: terraform sets {sorted(tf_env)}, code reads {sorted(env_read(crate))}"
    # Everything else read anywhere in the Lambda path is set by the runtime
    # (the gender-lambda helpers' variables count as their callers' reads).
    other = set()
    for path in ("crates/aws/src", "crates/lambda/src"):
        other |= env_names(list(rust_sources(ROOT / path).values()))
    helpers = set().union(*lambda_env_helpers().values()) - RUNTIME_ENV
    assert helpers == {"DEDUP_HORIZON_SECONDS"}, helpers  # guards the derivation
    assert other - helpers <= RUNTIME_ENV, f"variables read outside the function crates: {sorted(other - helpers - RUNTIME_ENV)}"


def test_keep_raw_setting_and_delete_permission_share_one_variable():
    call = CALLS[call_for_binary(CRATES["curate"])[0]]
    assert unwrap(call["environment_variables"])["KEEP_RAW"] == "${tostring(var.keep_raw)}"


def test_each_role_allows_exactly_the_actions_of_its_sdk_calls():
    for crate, binary in CRATES.items():
        call_name = call_for_binary(binary)[0]
        always, only_delete_raw, _ = expected_operations(crate, MODEL)
        trigger = LOG_ACTIONS | trigger_actions(call_name)
        if unwrap(CALLS[call_name].get("create_dead_letter_queue", [False])) is True:
            trigger |= ASYNC_DLQ_ACTIONS
        if always & {"start_query_execution"}:
            trigger |= ATHENA_QUERY_ACTIONS
        for keep_raw in (True, False):
            ops = always | (set() if keep_raw else only_delete_raw)
            expected = iam_actions(ops, MODEL) | trigger
            got = tf_actions(call_name, keep_raw)
            assert got == expected, (
                f"{crate} (keep_raw={keep_raw}): SDK calls {sorted(ops)}; "
                f"missing {sorted(expected - got)}, extra {sorted(got - expected)}"
            )


def test_operations_derived_from_the_code_are_the_known_ones():
    # Guards the derivation itself: if the sources change shape so that the
    # regexes stop seeing calls, this fails instead of the contract passing empty.
    got = {crate: expected_operations(crate, MODEL)[:2] for crate in CRATES}
    assert got["http"] == ({"put_records", "get_item", "get_parameters", "put_item", "send_message"}, set()), got["http"]
    assert got["transform"] == (set(), set()), got["transform"]
    assert got["consumer"] == ({"batch_get_item", "update_item", "send_message"}, set()), got["consumer"]
    # Curate archives only: raw objects in, Parquet and its deduplication
    # index (dedup/index) out; the counters are the consumer's.
    assert got["curate"] == ({"get_object", "put_object"}, {"delete_object"}), got["curate"]
    assert got["daily"] == (
        {"list_objects_v2", "get_object", "put_object", "update_item", "put_item", "delete_item", "invoke"},
        set(),
    ), got["daily"]
    assert got["erase"] == (
        {"get_item", "delete_item", "update_item", "get_object", "put_object", "start_query_execution", "get_query_execution", "get_query_results", "stop_query_execution"},
        set(),
    ), got["erase"]
    # No transactions remain (docs/DEPLOY.md): every write is one item.
    assert not any("transact_write_items" in ops for ops, _ in got.values()), got


def test_no_wildcard_actions_or_resources_in_function_roles():
    for binary in CRATES.values():
        for actions, resources, _ in role_statements(call_for_binary(binary)[0]):
            assert not any("*" in a for a in actions), actions
            assert "*" not in resources and resources, resources


def router_routes():
    """`METHOD /path` of every route the API's Router registers: each handler
    of a `routes!(module::handler)` in router.rs with the method and path of
    its `#[utoipa::path]`, and each plain `.route("/path", method(...))`."""
    api = ROOT / "crates/api/src"
    router = strip_comments((api / "router.rs").read_text())
    routes = {
        f"{method.upper()} {path}"
        for path, method in re.findall(r'\.route\("([^"]+)",\s*(get|post|put|delete)\(', router)
    }
    for module, handler in re.findall(r"routes!\((\w+)::(\w+)\)", router):
        source = strip_comments((api / f"{module}.rs").read_text())
        annotated = re.search(
            r'#\[utoipa::path\(\s*(get|post|put|delete)\s*,\s*path\s*=\s*"([^"]+)"'
            r"(?:(?!#\[utoipa::path).)*?\bfn " + handler + r"\b",
            source,
            re.S,
        )
        assert annotated, f"{module}::{handler} is routed without a #[utoipa::path]"
        routes.add(f"{annotated.group(1).upper()} {annotated.group(2)}")
    return routes


def test_api_routes_cover_the_router():
    routes = router_routes()
    assert "GET /gender/{clientid}" in routes and "GET /health" in routes, routes
    api_vars = named(load_tf(TF / "modules/api"), "variable")
    tf_routes = set(unwrap(api_vars["routes"]["default"]))
    assert "$default" in tf_routes, "without $default API Gateway answers unknown routes itself"
    missing = {r for r in routes if r not in tf_routes and not r.endswith("/")}
    assert not missing, f"Router routes without an API route: {missing}"
    assert tf_routes - {"$default"} <= routes, f"API routes the Router lacks: {tf_routes - routes}"


def test_table_key_and_ttl_match_the_adapter():
    rust = (ROOT / "crates/aws/src/dynamodb.rs").read_text()
    key = re.search(r'pub const KEY: &str = "(\w+)";', rust).group(1)
    assert '.item("expires_at"' in rust
    call = CALLS["profiles"]
    assert unwrap(call["hash_key"]) == key
    assert unwrap(call["ttl_attribute"]) == "expires_at"
    table = typed(load_tf(TF / "modules/dynamodb"), "resource")[("aws_dynamodb_table", "this")]
    assert unwrap(table["point_in_time_recovery"][0]["enabled"]) is True
    assert unwrap(table["server_side_encryption"][0]["enabled"]) is True


def test_table_is_on_demand_by_default_and_auto_scales_when_provisioned():
    doc = load_tf(TF / "modules/dynamodb")
    resources = typed(doc, "resource")
    table = resources[("aws_dynamodb_table", "this")]
    assert unwrap(table["billing_mode"]) == '${local.provisioned ? "PROVISIONED" : "PAY_PER_REQUEST"}', table["billing_mode"]
    # Auto scaling moves the capacity: Terraform must not set it back.
    assert unwrap(table["lifecycle"][0]["ignore_changes"]) == ["${read_capacity}", "${write_capacity}"] or unwrap(table["lifecycle"][0]["ignore_changes"]) == ["read_capacity", "write_capacity"], table["lifecycle"]
    root_vars = named(ROOT_DOC, "variable")
    assert unwrap(root_vars["dynamodb_capacity_mode"]["default"]) == "ON_DEMAND"
    assert validation_accepts(root_vars["dynamodb_capacity_mode"], "PROVISIONED") and not validation_accepts(root_vars["dynamodb_capacity_mode"], "PAY_PER_REQUEST")
    capacity = root_vars["dynamodb_provisioned_capacity"]
    default = unwrap(capacity["default"])
    assert validation_accepts(capacity, default)
    assert not validation_accepts(capacity, {**default, "read_min": 5000, "read_max": 4000}), "min above max"
    assert not validation_accepts(capacity, {**default, "target_utilization_percent": 95}), "DynamoDB auto scaling targets 20..90 %"
    assert not validation_accepts(capacity, {**default, "write_max": 40001}), "above the default per-table quota"
    target = resources[("aws_appautoscaling_target", "this")]
    policy = resources[("aws_appautoscaling_policy", "this")]
    assert unwrap(target["for_each"]) == "${local.scaled_dimensions}" and unwrap(policy["for_each"]) == "${local.scaled_dimensions}"
    assert unwrap(policy["policy_type"]) == "TargetTrackingScaling"
    call = CALLS["profiles"]
    assert unwrap(call["capacity_mode"]) == "${var.dynamodb_capacity_mode}"
    assert unwrap(call["provisioned_capacity"]) == "${var.dynamodb_provisioned_capacity}"
    assert unwrap(call["warm_throughput"]) == "${var.dynamodb_warm_throughput}"
    # Warm throughput reaches the table (a 6.x argument of the pinned provider).
    dyn = [d["warm_throughput"] for d in table.get("dynamic", []) if "warm_throughput" in d]
    assert dyn and "var.warm_throughput" in unwrap(dyn[0]["for_each"]), dyn
    content = dyn[0]["content"][0]
    assert unwrap(content["write_units_per_second"]) == "${warm_throughput.value.write_units_per_second}", content


def test_firehose_matches_the_transform_contract():
    stream = typed(load_tf(TF / "modules/firehose"), "resource")[("aws_kinesis_firehose_delivery_stream", "this")]
    s3 = stream["extended_s3_configuration"][0]
    assert unwrap(s3["prefix"]) == "raw/dt=!{partitionKeyFromLambda:dt}/"
    assert unwrap(s3["compression_format"]) == "UNCOMPRESSED"
    assert "error-output-type" in unwrap(s3["error_output_prefix"])
    assert unwrap(s3["dynamic_partitioning_configuration"][0]["enabled"]) is True
    assert unwrap(s3["s3_backup_mode"]) == "Enabled"
    import tf_names

    delivery = dict((m.address, m) for m, _ in tf_names.load(TF)[1])["module.delivery."]
    ev = tf_names.Evaluator(delivery)  # values as the root module's inputs make them
    params = {unwrap(p["parameter_name"]): str(ev.value(unwrap(p["parameter_value"]))) for p in s3["processing_configuration"][0]["processors"][0]["parameters"]}
    # The processor buffer is explicit (the provider drops a parameter equal
    # to Firehose's default, 1 MB / 60 s, so neither may be the default).
    assert set(params) == {"LambdaArn", "BufferSizeInMBs", "BufferIntervalInSeconds"}, params
    assert params["BufferSizeInMBs"] == "0.25" and params["BufferIntervalInSeconds"] == "10", params
    root_vars = named(ROOT_DOC, "variable")
    size, interval = root_vars["firehose_processor_buffer_size_mb"], root_vars["firehose_processor_buffer_interval_seconds"]
    assert not validation_accepts(size, 1) and not validation_accepts(interval, 60), "Firehose's defaults make a perpetual diff"
    # The bound of docs/DEPLOY.md ("The transform's invocation size"): the
    # request carries each record base64-encoded plus a JSON envelope with
    # its Kinesis metadata; the smallest record is one hit.
    smallest_record, envelope, limit = 60, 512, 6_000_000
    def request_bytes(buffer_mb):
        records = int(buffer_mb * 1024 * 1024) // smallest_record
        return records * (-(-smallest_record // 3) * 4 + envelope)
    largest = max(v / 100 for v in range(20, 301) if validation_accepts(size, v / 100))
    assert largest == 0.5 and request_bytes(largest) < limit, (largest, request_bytes(largest))
    assert request_bytes(float(params["BufferSizeInMBs"])) < limit / 2, "the default must stay well under the limit"
    assert request_bytes(1) > limit, "Firehose's default 1 MB does not fit: the reason for the explicit buffer"
    transform = "\n".join(p.read_text() for p in [ROOT / "crates/core/src/transform.rs", *sorted((ROOT / "functions/transform/src").glob("*.rs"))])
    assert "partition" in transform.lower() and '"dt"' in transform, "the transform must emit metadata.partitionKeys.dt"


def test_every_prefix_firehose_writes_expires():
    # Raw objects, source backups and the error prefix (in both buckets) are
    # all written by Firehose; each needs a lifecycle rule with an expiration
    # in the bucket it lands in, or it grows forever.
    import tf_names

    root, children = tf_names.load(TF)
    delivery = dict((m.address, m) for m, _ in children)["module.delivery."]
    ev_delivery = tf_names.Evaluator(delivery)
    stream = delivery.resources[("aws_kinesis_firehose_delivery_stream", "this")]
    s3 = stream["extended_s3_configuration"][0]
    backup = s3["s3_backup_configuration"][0]
    bucket_call = {}
    for arg in ("raw_bucket_arn", "backup_bucket_arn"):
        m = re.fullmatch(r"\$\{module\.(\w+)\.arn\}", unwrap(CALLS["delivery"][arg]))
        assert m, arg
        bucket_call["${var.%s}" % arg] = m.group(1)
    written = []
    for conf in (s3, backup):
        call = bucket_call[unwrap(conf["bucket_arn"])]
        for key in ("prefix", "error_output_prefix"):
            written.append((call, ev_delivery.value(unwrap(conf[key]))))
    ev_root = tf_names.Evaluator(root)
    for call, key_prefix in written:
        rules = ev_root.value(unwrap(CALLS[call]["lifecycle_rules"]))
        covering = [r for r in rules if key_prefix.startswith(r["prefix"]) and r.get("expiration_days")]
        assert covering, f"{call}: no expiring lifecycle rule covers {key_prefix!r} (rules: {rules})"
    assert ("raw_bucket", "errors/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/") in written, written
    assert ("backup_bucket", "errors/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/") in written, written
    # The alarm on error records watches the same prefix in the raw bucket.
    assert unwrap(CALLS["alarms"]["error_records_bucket_name"]) == "${module.%s.name}" % bucket_call["${var.raw_bucket_arn}"]
    assert unwrap(CALLS["alarms"]["error_records_prefix"]) == "${module.delivery.error_prefix}"
    assert ev_delivery.value(unwrap(s3["error_output_prefix"])).startswith(ev_delivery.reference("var.error_prefix"))


def test_keys_and_erasure_salt_live_in_ssm_and_only_http_reads_them():
    call = CALLS[call_for_binary(CRATES["http"])[0]]
    env = unwrap(call["environment_variables"])
    # The admin key (SPEC 4's) and the scoped keys of SPEC 18, each its own
    # SecureString of a generated value, named by the environment, never in it.
    for key, variable, suffix in (
        ("api_key", "API_KEY_PARAMETER", "api-key"),
        ("ingest_key", "INGEST_KEY_PARAMETER", "ingest-key"),
        ("read_key", "READ_KEY_PARAMETER", "read-key"),
    ):
        assert variable.removesuffix("_PARAMETER") not in env, "a key must not be an environment variable (lambda:GetFunctionConfiguration shows those)"
        assert env[variable] == "${aws_ssm_parameter.%s.name}" % key
        param = typed(ROOT_DOC, "resource")[("aws_ssm_parameter", key)]
        assert unwrap(param["type"]) == "SecureString"
        assert unwrap(param["value"]) == "${random_password.%s.result}" % key
        assert unwrap(param["name"]) == "/${var.project}/${var.environment}/" + suffix
        assert "key_id" not in param, "a customer managed key needs kms:Decrypt (with kms:ViaService) in the http role"
        assert unwrap(named(ROOT_DOC, "output")[key]["sensitive"]) is True
        assert unwrap(named(ROOT_DOC, "output")[key + "_parameter"]["value"]) == "${aws_ssm_parameter.%s.name}" % key
    # The function reads all of them (and the salt) in one GetParameters call.
    lib = (ROOT / "functions/http/src/lib.rs").read_text()
    for field in ("api_key_parameter", "ingest_key_parameter", "read_key_parameter", "erasure_salt_parameter"):
        assert f"&config.{field}" in lib, field
    grants = []
    for name in lambda_calls():
        for actions, resources, _ in role_statements(name):
            if any(a.startswith("ssm:") or a.startswith("kms:") for a in actions):
                grants.append((name, sorted(actions), resources))
    assert sorted(grants) == [
        ("http", ["ssm:GetParameters"], ["${aws_ssm_parameter.api_key.arn}"]),
        ("http", ["ssm:GetParameters"], ["${aws_ssm_parameter.erasure_salt.arn}"]),
        ("http", ["ssm:GetParameters"], ["${aws_ssm_parameter.ingest_key.arn}"]),
        ("http", ["ssm:GetParameters"], ["${aws_ssm_parameter.read_key.arn}"]),
    ], grants
    # The erasure salt is a secret of the same kind, read the same way.
    assert env["ERASURE_SALT_PARAMETER"] == "${aws_ssm_parameter.erasure_salt.name}"
    salt = typed(ROOT_DOC, "resource")[("aws_ssm_parameter", "erasure_salt")]
    assert unwrap(salt["type"]) == "SecureString"
    assert unwrap(salt["value"]) == "${random_password.erasure_salt.result}"
    assert "key_id" not in salt
    assert unwrap(named(ROOT_DOC, "output")["api_key"]["sensitive"]) is True


def test_body_limit_is_passed_and_matches_the_code_default():
    call = CALLS[call_for_binary(CRATES["http"])[0]]
    assert unwrap(call["environment_variables"])["MAX_BODY_BYTES"] == "${tostring(var.max_body_bytes)}"
    default = unwrap(named(ROOT_DOC, "variable")["max_body_bytes"]["default"])
    assert default == 4 * 1024 * 1024
    # 4 MiB base64-encoded, plus room for the event envelope, under Lambda's 6 MB.
    assert -(-default // 3) * 4 == 5_592_408 < 6_000_000
    code = "\n".join(rust_sources(ROOT / "functions/http/src").values())
    m = re.search(r"DEFAULT_MAX_BODY_BYTES\s*:\s*usize\s*=\s*([\d_ *]+);", code)
    if m:  # the function's own default, when it names one
        assert eval(m.group(1).replace("_", ""), {"__builtins__": {}}) == default, m.group(0)  # noqa: S307


def test_timeout_chain_ends_inside_api_gateway():
    # SDK timeouts < the function's request deadline < the Lambda timeout <
    # API Gateway's integration timeout (30 s for HTTP APIs, not raisable).
    integration = typed(load_tf(TF / "modules/api"), "resource")[("aws_apigatewayv2_integration", "this")]
    assert unwrap(integration["integration_method"]) == "POST"
    api_timeout_s = unwrap(integration["timeout_milliseconds"]) / 1000
    assert api_timeout_s <= 30
    timeouts = named(ROOT_DOC, "variable")["lambda_timeout_seconds"]
    http_default = unwrap(timeouts["default"])["http"]
    assert http_default < api_timeout_s, (http_default, api_timeout_s)
    assert validation_accepts(timeouts, {**unwrap(timeouts["default"]), "http": 29})
    assert not validation_accepts(timeouts, {**unwrap(timeouts["default"]), "http": int(api_timeout_s)})
    code = "\n".join(rust_sources(ROOT / "functions/http/src").values())
    deadline = re.search(r"REQUEST_DEADLINE\s*:\s*Duration\s*=\s*Duration::from_secs\((\d+)\)", code)
    if deadline:  # the function's own per-request deadline, when it names one
        assert int(deadline.group(1)) < http_default, deadline.group(0)


def test_background_functions_keep_platform_report_lines():
    # system_log_level WARN drops the platform.report record (duration,
    # memory) of each invocation; only the per-request http function keeps
    # WARN. Every function crate needs a key, so a new function must choose.
    levels = named(ROOT_DOC, "variable")["lambda_system_log_level"]
    type_expr = unwrap(levels["type"])
    for crate in CRATES:
        expected = "WARN" if crate == "http" else "INFO"
        assert re.search(r"\b%s'?\s*[=:]\s*'?\$?\{?optional\(string,\s*[\"']%s[\"']\)" % (crate, expected), type_expr), (crate, type_expr)
        call = CALLS[call_for_binary(CRATES[crate])[0]]
        assert unwrap(call["system_log_level"]) == "${var.lambda_system_log_level.%s}" % crate, crate
    module_vars = named(LAMBDA_DOC, "variable")
    assert unwrap(module_vars["system_log_level"]["default"]) == "INFO"
    fn = [b for (t, _), b in typed(LAMBDA_DOC, "resource").items() if t == "aws_lambda_function"][0]
    assert unwrap(fn["logging_config"][0]["system_log_level"]) == "${var.system_log_level}"


def test_throttling_alarm_covers_every_table_operation_of_the_code():
    # ThrottledRequests exists per operation only: the alarm sums the
    # operations listed in local.table_operations, which must include every
    # DynamoDB operation a function makes (derived from the code).
    ops = set()
    for crate in CRATES:
        always, only_delete_raw, _ = expected_operations(crate, MODEL)
        ops |= always | only_delete_raw
    dynamo = {"".join(w.capitalize() for w in op.split("_")) for op in ops if op in {"get_item", "put_item", "update_item", "delete_item", "batch_get_item", "batch_write_item", "scan", "query", "transact_write_items", "transact_get_items"}}
    listed = set(unwrap(LOCALS["table_operations"]))
    assert dynamo <= listed, f"operations without a throttling metric in the alarm: {sorted(dynamo - listed)}"
    # And no more: each metric of the alarm is billed.
    assert listed <= dynamo, f"the alarm sums operations no function makes: {sorted(listed - dynamo)}"
    assert unwrap(CALLS["alarms"]["table_operations"]) == "${local.table_operations}"
    assert unwrap(CALLS["alarms"]["table_name"]) == "${module.profiles.name}"
    alarms = typed(load_tf(TF / "modules/alarms"), "resource")
    events = unwrap(alarms[("aws_cloudwatch_metric_alarm", "table_events")]["for_each"])
    assert set(events.values()) >= {"ReadThrottleEvents", "WriteThrottleEvents", "TransactionConflict"}, events
    latency = unwrap(alarms[("aws_cloudwatch_metric_alarm", "api_latency")]["for_each"])
    assert set(latency.values()) == {"Latency", "IntegrationLatency"}
    assert unwrap(alarms[("aws_cloudwatch_metric_alarm", "api_latency")]["extended_statistic"]) == "p99"


def test_function_url_is_optional_public_and_checked_by_the_function():
    doc = load_tf(TF / "modules/function_url")
    resources = typed(doc, "resource")
    url = resources[("aws_lambda_function_url", "this")]
    assert unwrap(url["authorization_type"]) == "NONE"
    perms = {name: b for (t, name), b in resources.items() if t == "aws_lambda_permission"}
    assert {unwrap(b["action"]) for b in perms.values()} == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    assert all(unwrap(b["principal"]) == "*" for b in perms.values())
    call = CALLS["http_function_url"]
    assert unwrap(call["count"]) == "${var.http_function_url.enabled ? 1 : 0}"
    assert unwrap(call["function_name"]) == "${module.http.function_name}"
    default = unwrap(named(ROOT_DOC, "variable")["http_function_url"]["default"])
    assert default == {"enabled": False}, default
    # The same Router answers behind it: the key header must pass CORS, and
    # only POST /hits is for browsers (SPEC 18).
    cors = [d["cors"] for d in url.get("dynamic", []) if "cors" in d][0]
    headers = unwrap(cors["content"][0]["allow_headers"])
    assert "x-api-key" in headers and "content-type" in headers, headers
    assert unwrap(cors["content"][0]["allow_methods"]) == ["POST"]


def test_cors_origins_reach_the_http_api_and_the_function():
    # SPEC 18: one list of origins; API Gateway answers the preflights
    # (POST only) and the Router refuses POST /hits from other origins.
    variable = named(ROOT_DOC, "variable")["cors_allow_origins"]
    assert unwrap(variable["default"]) == [], "CORS is off by default"
    assert unwrap(CALLS["api"]["cors_allow_origins"]) == "${var.cors_allow_origins}"
    api = typed(load_tf(TF / "modules/api"), "resource")[("aws_apigatewayv2_api", "this")]
    blocks = [d["cors_configuration"] for d in api.get("dynamic", []) if "cors_configuration" in d]
    assert len(blocks) == 1, api
    block = blocks[0]
    # (the HCL parser quotes the list's element: [${var.x}])
    gate = re.sub(r"[\s'\"]|\$\{(var\.\w+)\}", lambda m: m.group(1) or "", unwrap(block["for_each"]))
    assert gate == "${length(var.cors_allow_origins)>0?[var.cors_allow_origins]:[]}", gate
    content = block["content"][0]
    assert unwrap(content["allow_origins"]) == "${cors_configuration.value}"
    assert unwrap(content["allow_methods"]) == ["POST"]
    assert sorted(unwrap(content["allow_headers"])) == ["content-type", "x-api-key"]
    assert unwrap(content["expose_headers"]) == ["retry-after"]
    # The code's preflight max age is the API's default.
    api_vars = named(load_tf(TF / "modules/api"), "variable")
    cors_rs = (ROOT / "crates/api/src/cors.rs").read_text()
    max_age = re.search(r"PREFLIGHT_MAX_AGE_SECONDS: u32 = ([\d_]+);", cors_rs).group(1).replace("_", "")
    assert unwrap(api_vars["preflight_max_age_seconds"]["default"]) == int(max_age)
    env = unwrap(CALLS[call_for_binary(CRATES["http"])[0]]["environment_variables"])
    assert env["CORS_ORIGINS"].replace(" ", "") == '${join(",",local.cors_origins)}', env["CORS_ORIGINS"]
    origins = unwrap(LOCALS["cors_origins"]).replace(" ", "")
    assert origins == "${distinct(concat(var.cors_allow_origins,var.http_function_url.cors_allow_origins))}", origins
SDK_TIMEOUTS_RE = re.compile(
    r"SDK_TIMEOUTS\s*:\s*SdkTimeouts\s*=\s*SdkTimeouts\s*\{\s*"
    r"attempt\s*:\s*(?:std::time::)?Duration::from_secs\((\d+)\)\s*,\s*"
    r"operation\s*:\s*(?:std::time::)?Duration::from_secs\((\d+)\)\s*,?\s*\}"
)


def test_every_function_that_calls_aws_ends_its_sdk_calls_inside_its_timeout():
    # A stalled call must end in the SDK's timeout (and a retry), not in
    # Lambda killing the invocation: attempt <= operation < the function's
    # timeout (Terraform default), and the constants are what main.rs loads.
    timeouts = unwrap(named(ROOT_DOC, "variable")["lambda_timeout_seconds"]["default"])
    checked = []
    for crate in CRATES:
        if not expected_operations(crate, MODEL)[0]:
            continue  # transform makes no AWS calls
        src = "\n".join(rust_sources(ROOT / "functions" / crate / "src").values())
        m = SDK_TIMEOUTS_RE.search(src)
        assert m, f"{crate}: no SDK_TIMEOUTS constant"
        attempt, operation = int(m.group(1)), int(m.group(2))
        assert re.search(r"load_sdk_config\(Some\(SDK_TIMEOUTS\)\)", src), f"{crate}: main.rs does not load SDK_TIMEOUTS"
        assert 0 < attempt <= operation < timeouts[crate], (crate, attempt, operation, timeouts[crate])
        if crate == "erase":
            margin = re.search(r"DEADLINE_MARGIN\s*:\s*Duration\s*=\s*Duration::from_secs\((\d+)\)", src)
            assert margin and operation < int(margin.group(1)), "erase: a call started before the margin must end before the deadline"
        checked.append(crate)
    assert sorted(checked) == ["consumer", "curate", "daily", "erase", "http"], checked


def test_api_url_has_no_trailing_slash():
    outputs = named(load_tf(TF / "modules/api"), "output")
    assert unwrap(outputs["url"]["value"]) == '${trimsuffix(aws_apigatewayv2_stage.this.invoke_url,"/")}'
    assert unwrap(named(ROOT_DOC, "output")["api_url"]["value"]) == "${module.api.url}"


# ------------------------------------------------------------------ variable validations


def validation_accepts(variable, value):
    """Evaluates a variable's validation conditions for one value.

    Handles the simple conditions this project writes: comparisons, &&, ||, !,
    contains(), floor(), var.NAME and var.NAME.attr. Raises for anything else,
    so a condition this cannot read fails the test instead of passing it."""
    ok = True
    for validation in variable.get("validation", []):
        cond = unwrap(validation["condition"])
        m = re.fullmatch(r"\$\{(.*)\}", cond, re.S)
        assert m, cond
        expr = m.group(1)
        if re.search(r"\b(can|regex|try|alltrue|anytrue|length|values|for|max|min)\b|\?", expr):
            raise NotImplementedError(f"condition not supported by validation_accepts: {expr}")
        if len(set(re.findall(r"\bvar\.(\w+)", expr))) > 1:
            raise NotImplementedError(f"condition over two variables (terraform test checks those): {expr}")
        expr = re.sub(r"\bvar\.\w+((?:\.\w+)*)", lambda mm: "__v" + "".join(f"[{a!r}]" for a in mm.group(1).split(".")[1:]), expr)
        expr = expr.replace("&&", " and ").replace("||", " or ")
        expr = re.sub(r"!(?!=)", " not ", expr)
        expr = expr.replace("null", "None")
        result = eval(expr, {"__builtins__": {}}, {"__v": value, "contains": lambda xs, x: x in xs, "floor": lambda x: int(x // 1), "None": None})  # noqa: S307 - our own .tf files
        ok = ok and bool(result)
    return ok


def tf_variables(directory):
    return named(load_tf(directory), "variable")


VALIDATION_CASES = [
    # (directory, variable, accepted, rejected)
    ("", "firehose_buffering_interval_seconds", [60, 300, 900], [0, 59, 901]),
    ("modules/firehose", "buffering_interval_seconds", [60, 900], [0, 59, 901]),
    ("", "firehose_buffering_size_mb", [64, 128], [0, 63, 129]),
    ("modules/firehose", "buffering_size_mb", [64, 128], [1, 63, 129]),
    ("", "max_body_bytes", [1024, 4194304], [0, 1023, 4194305, 5242880]),
    ("", "log_level", ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], ["info", "WARNING", "OFF", ""]),
    ("modules/lambda", "log_level", ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], ["info", "WARNING", "OFF"]),
    ("", "curate_queue_age_threshold_seconds", [60, 900], [0, 59]),
    ("", "dedup_horizon_seconds", [0, 60, 3600, 604800], [-1, 0.5, 604801]),
    ("", "consumer_starting_position", ["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"], ["trim_horizon", "AT_SEQUENCE_NUMBER", ""]),
    ("", "consumer_batch_size", [1, 1000, 10000], [0, 10001, 0.5]),
    ("", "consumer_batching_window_seconds", [0, 1, 300], [-1, 301, 0.5]),
    ("", "consumer_parallelization_factor", [1, 10], [0, 11, 1.5]),
    ("", "consumer_maximum_retry_attempts", [0, 10, 10000], [-1, 10001]),
    ("", "consumer_iterator_age_threshold_ms", [1000, 5000], [0, 999]),
    ("modules/consumer_trigger", "maximum_record_age_seconds", [60, 3600, 604800], [-1, 0, 59, 604801]),
    ("modules/consumer_trigger", "maximum_retry_attempts", [0, 10000], [-1, 10001]),
]


def test_variable_validations_accept_and_reject_the_documented_ranges():
    failures = []
    for directory, name, accepted, rejected in VALIDATION_CASES:
        variables = tf_variables(TF / directory if directory else TF)
        assert name in variables, f"{directory or 'root'}: no variable {name}"
        for value in accepted:
            if not validation_accepts(variables[name], value):
                failures.append(f"{directory or 'root'} {name} = {value!r} is rejected, should be accepted")
        for value in rejected:
            if validation_accepts(variables[name], value):
                failures.append(f"{directory or 'root'} {name} = {value!r} is accepted, should be rejected")
    assert not failures, "\n".join(failures)


def test_variable_defaults_pass_their_own_validation():
    checked = 0
    for directory in [TF, *sorted(p for p in (TF / "modules").iterdir() if p.is_dir())]:
        for name, body in tf_variables(directory).items():
            if "validation" not in body or "default" not in body or unwrap(body["default"]) is None:
                continue
            default = unwrap(body["default"])
            if isinstance(default, str) and re.fullmatch(r"\$\{-?\d+\}", default):
                default = int(default[2:-1])  # python-hcl2 renders -1 as "${-1}"
            try:
                ok = validation_accepts(body, default)
            except NotImplementedError:
                continue  # regex and list conditions: covered by terraform validate in CI
            checked += 1
            assert ok, f"{directory.name}: variable {name}: its default {default!r} fails its validation"
    assert checked >= 30, checked


def test_validation_evaluator_reads_the_old_firehose_condition():
    # The condition that let 0 through (zero buffering is not available with
    # dynamic partitioning): the evaluator must see that it accepts 0.
    old = {"validation": [{"condition": ["${var.x >= 0 && var.x <= 900}"]}]}
    assert validation_accepts(old, 0) and validation_accepts(old, 59)
    assert not validation_accepts(old, 901)


def test_daily_schedule_sends_the_event_the_code_parses():
    daily = (ROOT / "functions/daily/src/lib.rs").read_text()
    assert '"Scheduled Event"' in daily
    sched = typed(load_tf(TF / "modules/schedule"), "resource")
    assert ("aws_cloudwatch_event_rule", "this") in sched  # EventBridge rule events carry detail-type and time
    default = unwrap(named(ROOT_DOC, "variable")["daily_schedule_expression"]["default"])
    assert default == "cron(0 1 * * ? *)"


def test_curate_queue_outlives_the_function_timeout():
    body = typed(load_tf(TF / "modules/curate_trigger"), "resource")
    assert unwrap(body[("aws_sqs_queue", "this")]["visibility_timeout_seconds"]) == "${var.function_timeout_seconds * 6}"
    assert unwrap(body[("aws_lambda_event_source_mapping", "this")]["function_response_types"]) == ["ReportBatchItemFailures"]
    assert unwrap(CALLS["curate_trigger"]["function_timeout_seconds"]) == "${var.lambda_timeout_seconds.curate}"


def test_erase_queue_batches_outlive_the_function_and_report_partial_failures():
    body = typed(load_tf(TF / "modules/erase_queue"), "resource")
    queue = body[("aws_sqs_queue", "this")]
    assert unwrap(queue["visibility_timeout_seconds"]) == "${var.function_timeout_seconds * 6}"
    assert unwrap(queue["delay_seconds"]) == "${var.delay_seconds}"
    mapping = body[("aws_lambda_event_source_mapping", "this")]
    assert unwrap(mapping["function_response_types"]) == ["ReportBatchItemFailures"]
    assert unwrap(mapping["maximum_batching_window_in_seconds"]) == "${var.batching_window_seconds}"
    call = CALLS["erase_queue"]
    assert unwrap(call["function_timeout_seconds"]) == "${var.lambda_timeout_seconds.erase}"
    assert unwrap(call["function_name"]) == "${module.erase.function_name}"
    # The batch size the queue delivers is at most what one query may name.
    code = (ROOT / "functions/erase/src/find.rs").read_text()
    per_query = int(re.search(r"MAX_VISITORS_PER_QUERY: usize = (\d+);", code).group(1))
    batch = named(ROOT_DOC, "variable")["erasure_batch_size"]
    assert validation_accepts(batch, per_query) and not validation_accepts(batch, per_query + 1)
    # The http function queues to exactly this queue.
    http = unwrap(CALLS[call_for_binary(CRATES["http"])[0]]["environment_variables"])
    assert http["ERASURE_QUEUE_URL"] == "${module.erase_queue.queue_url}"


def test_consumer_reads_the_stream_and_dead_letters_to_one_queue():
    # The consumer is triggered by the hits stream only, reports partial
    # batch failures, bisects on function errors, bounds retries and record
    # age, and sends what it cannot count to one queue: the mapping's
    # on-failure destination is the queue the function's poison records go
    # to (DEAD_LETTER_QUEUE_URL), and the only queue its role may send to.
    call_name = call_for_binary(CRATES["consumer"])[0]
    mappings = event_source_mappings(call_name)
    assert [(kind, trigger) for kind, _, trigger in mappings] == [("kinesis", "consumer_trigger")], mappings
    _, mapping, trigger = mappings[0]
    assert unwrap(CALLS[trigger]["stream_arn"]) == "${module.stream.arn}"
    assert unwrap(mapping["function_response_types"]) == ["ReportBatchItemFailures"]
    assert unwrap(mapping["bisect_batch_on_function_error"]) is True
    assert unwrap(mapping["maximum_retry_attempts"]) == "${var.maximum_retry_attempts}"
    assert unwrap(mapping["maximum_record_age_in_seconds"]) == "${var.maximum_record_age_seconds}"
    destination = unwrap(mapping["destination_config"][0]["on_failure"][0]["destination_arn"])
    outputs = named(load_tf(TF / "modules/consumer_trigger"), "output")
    queue = re.fullmatch(r"\$\{aws_sqs_queue\.(\w+)\.arn\}", destination).group(1)
    assert unwrap(outputs["dlq_arn"]["value"]) == "${aws_sqs_queue.%s.arn}" % queue
    assert unwrap(outputs["dlq_url"]["value"]) == "${aws_sqs_queue.%s.id}" % queue
    env = unwrap(CALLS[call_name]["environment_variables"])
    assert env["DEAD_LETTER_QUEUE_URL"] == "${module.%s.dlq_url}" % trigger
    # Deduplicated against the same horizon as curate.
    assert env["DEDUP_HORIZON_SECONDS"] == "${tostring(var.dedup_horizon_seconds)}"
    curate = unwrap(CALLS[call_for_binary(CRATES["curate"])[0]]["environment_variables"])
    assert curate["DEDUP_HORIZON_SECONDS"] == env["DEDUP_HORIZON_SECONDS"]
    # Exact resources: the stream's reads on the stream, SendMessage on the queue.
    for actions, resources, _ in role_statements(call_name):
        if actions & KINESIS_EVENT_SOURCE_ACTIONS:
            assert actions == KINESIS_EVENT_SOURCE_ACTIONS and resources == ["${module.stream.arn}"], (actions, resources)
        if "sqs:SendMessage" in actions:
            assert resources == ["${module.%s.dlq_arn}" % trigger], resources
        assert not any(a.startswith("kms:") for a in actions), "the stream's AWS managed key needs no kms grant"
    # Record age within the horizon: the call passes the variable, whose
    # default is within the horizon's default and whose validation compares
    # the two (terraform test rejects a longer age).
    assert unwrap(CALLS[trigger]["maximum_record_age_seconds"]) == "${var.consumer_maximum_record_age_seconds}"
    root_vars = named(ROOT_DOC, "variable")
    age, horizon = root_vars["consumer_maximum_record_age_seconds"], root_vars["dedup_horizon_seconds"]
    assert 60 <= unwrap(age["default"]) <= unwrap(horizon["default"]), (age["default"], horizon["default"])
    assert any("var.dedup_horizon_seconds" in unwrap(v["condition"]) for v in age["validation"]), age["validation"]
    assert unwrap(root_vars["consumer_starting_position"]["default"]) == "TRIM_HORIZON"
    assert unwrap(root_vars["consumer_batching_window_seconds"]["default"]) == 0
    assert unwrap(CALLS["alarms"]["iterator_age_function_names"]) == {"consumer": "${module.consumer.function_name}"}
    assert unwrap(CALLS["alarms"]["dead_letter_queue_names"])["consumer"] == "${module.%s.dlq_name}" % trigger


def test_curate_keeps_its_deduplication_index_where_its_role_and_lifecycle_say():
    # The index is one object rewritten for every raw object: its key must
    # lie under local.dedup_index_prefix, which curate may read and replace,
    # which no lifecycle rule expires, and whose old versions (the curated
    # bucket is versioned) go after one day.
    import tf_names

    prefix = unwrap(LOCALS["dedup_index_prefix"])
    sources = {**rust_sources(ROOT / "functions/curate/src"), **rust_sources(ROOT / "crates/pipeline/src"), **rust_sources(ROOT / "crates/aws/src"), ROOT / "crates/core/src/layout.rs": (ROOT / "crates/core/src/layout.rs").read_text()}
    keys = {k for src in sources.values() for k in re.findall(r'"(dedup/[^"]*)"', src)}
    assert keys, "curate's code names no dedup/ key (the deduplication index)"
    assert all(k.startswith(prefix) for k in keys), (keys, prefix)
    curate = call_for_binary(CRATES["curate"])[0]
    grants = [(acts, res) for acts, res, _ in role_statements(curate) if "${module.curated_bucket.arn}/${local.dedup_index_prefix}*" in res]
    assert grants == [({"s3:GetObject", "s3:PutObject"}, ["${module.curated_bucket.arn}/${local.dedup_index_prefix}*"])], grants
    assert any(acts == {"s3:ListBucket"} and res == ["${module.curated_bucket.arn}"] for acts, res, _ in role_statements(curate)), "a missing index must read as 404, not 403"
    assert not any(a.startswith("dynamodb:") for acts, _, _ in role_statements(curate) for a in acts), "curate no longer writes DynamoDB"
    rules = tf_names.Evaluator(tf_names.load(TF)[0]).value(unwrap(CALLS["curated_bucket"]["lifecycle_rules"]))
    matching = [r for r in rules if (prefix + "index").startswith(r["prefix"])]
    assert [r["id"] for r in matching] == ["dedup-index"], matching
    assert matching[0].get("expiration_days") is None and matching[0]["noncurrent_expiration_days"] == 1, matching


def test_names_carry_project_and_environment():
    assert unwrap(LOCALS["name"]) == "${var.project}-${var.environment}"
    for name, body in CALLS.items():
        for arg in ("name", "database_name"):
            if arg in body:
                value = unwrap(body[arg])
                assert value.startswith("${local.name}") or "local.name" in value, f"module {name}: {arg} = {value!r}"


def test_physical_names_are_unique():
    # Two resources of one type with one physical name (e.g. two SQS queues
    # <prefix>-daily-dlq) fail at apply time, or worse, one silently adopts the
    # other's: evaluate every name from the module inputs and compare.
    import tf_names

    names, unresolved = tf_names.physical_names(TF)
    assert not unresolved, "names tf_names.py could not evaluate (extend it):\n" + "\n".join(f"{a}: {r}" for a, r in unresolved)
    dups = tf_names.collisions(names)
    assert not dups, "resources sharing one physical name:\n" + "\n".join(
        f"{t} {n!r}: {', '.join(a)}" for (t, _, n), a in dups.items()
    )
    # Guards the evaluation itself: these names must come out exactly.
    got = {(t, n) for (t, _, n) in names}
    for expected in [
        ("aws_sqs_queue", "gender-dev-curate-dlq"),
        ("aws_sqs_queue", "gender-dev-daily-async-dlq"),
        ("aws_sqs_queue", "gender-dev-daily-schedule-dlq"),
        ("aws_sqs_queue", "gender-dev-consumer-dlq"),
        ("aws_lambda_function", "gender-dev-consumer"),
        ("aws_cloudwatch_metric_alarm", "gender-dev-lambda-consumer-iterator-age"),
        ("aws_lambda_function", "gender-dev-http"),
        ("aws_cloudwatch_log_group", "/aws/lambda/gender-dev-http"),
        ("aws_cloudwatch_metric_alarm", "gender-dev-lambda-http-errors"),
        ("aws_iam_role", "gender-dev-hits-firehose"),
        ("aws_glue_catalog_database", "gender_dev"),
    ]:
        assert expected in got, f"{expected} not among the evaluated names: {sorted(got)}"
    assert len(names) >= 60, len(names)


def test_physical_name_check_reports_a_planted_duplicate():
    # fixtures/duplicate_names: the layout with two queues <prefix>-daily-dlq.
    import tf_names

    names, unresolved = tf_names.physical_names(Path(__file__).resolve().parent / "fixtures/duplicate_names")
    assert not unresolved, unresolved
    dups = tf_names.collisions(names)
    assert set(dups) == {("aws_sqs_queue", None, "gender-dev-daily-dlq")}, dups
    assert sorted(dups[("aws_sqs_queue", None, "gender-dev-daily-dlq")]) == [
        "module.daily.aws_sqs_queue.dlq[0]",
        "module.daily_schedule.aws_sqs_queue.dlq",
    ]
    # The count-switched queue of module.curate does not exist, so it collides with nothing.
    assert ("aws_sqs_queue", None, "gender-dev-curate-dlq") in names
    assert names[("aws_sqs_queue", None, "gender-dev-curate-dlq")] == ["aws_sqs_queue.curate_dlq"]


def test_provider_and_terraform_versions_are_pinned_consistently():
    # The offline schema is derived from exact provider versions; the stack
    # must pin exactly those (no lock file is committed), and every workflow
    # must run one Terraform version that has GA S3 native locking (1.11).
    import json

    schema = json.loads((Path(__file__).resolve().parent / "provider_schema.json").read_text())
    terraform_block = ROOT_DOC["terraform"][0]
    providers = unwrap(terraform_block["required_providers"])
    assert set(k for k in providers if k not in ("__start_line__", "__end_line__")) == {"aws", "random"}, providers
    for name in ("aws", "random"):
        spec = unwrap(providers[name])
        assert spec["version"] == schema["providers"][f"hashicorp/{name}"]["version"], (name, spec)
    assert unwrap(terraform_block["required_version"]) == ">= 1.11"
    for module in sorted((TF / "modules").iterdir()):
        assert unwrap(load_tf(module)["terraform"][0]["required_version"]) == ">= 1.11", module.name
    pins = set()
    for workflow in sorted((ROOT / ".github/workflows").glob("*.yml")):
        pins |= set(re.findall(r'terraform_version:\s*"([^"]+)"', workflow.read_text()))
    assert pins == {"1.11.4"}, pins
    deploy = (ROOT / ".github/workflows/deploy.yml").read_text()
    assert "-auto-approve" not in deploy, "apply the reviewed plan file, never an unreviewed one"
    assert re.search(r"apply -input=false tfplan\b", deploy), "the apply job must apply the saved plan"


# Resource type prefix -> the IAM service whose actions create and delete it.
TYPE_SERVICE = [
    ("aws_apigatewayv2_", "apigateway"),
    ("aws_appautoscaling_", "application-autoscaling"),
    ("aws_athena_", "athena"),
    ("aws_cloudwatch_event_", "events"),
    ("aws_cloudwatch_log_", "logs"),
    ("aws_cloudwatch_metric_alarm", "cloudwatch"),
    ("aws_dynamodb_", "dynamodb"),
    ("aws_glue_", "glue"),
    ("aws_iam_", "iam"),
    ("aws_kinesis_firehose_", "firehose"),
    ("aws_kinesis_stream", "kinesis"),
    ("aws_lambda_", "lambda"),
    ("aws_s3_", "s3"),
    ("aws_sns_", "sns"),
    ("aws_sqs_", "sqs"),
    ("aws_ssm_", "ssm"),
]


def test_deploy_role_policy_covers_every_service_the_stack_uses():
    # docs/deploy-role-policy.json is what the deploying principal needs: a new
    # resource type from a service it does not cover must come with actions.
    import json

    policy = json.loads((ROOT / "docs/deploy-role-policy.json").read_text())
    actions = [a for st in policy["Statement"] for a in st["Action"]]
    services = {a.split(":")[0] for a in actions}
    assert not [a for a in actions if a.endswith(":*") or a == "*"], "no service-wide wildcards"
    used = set()
    for directory in [TF, *sorted((TF / "modules").iterdir())]:
        for (rtype, _) in typed(load_tf(directory), "resource"):
            if rtype.startswith("random_"):
                continue
            service = next((svc for prefix, svc in TYPE_SERVICE if rtype.startswith(prefix)), None)
            assert service, f"{rtype}: which IAM service manages it? (TYPE_SERVICE, docs/deploy-role-policy.json)"
            used.add(service)
    assert used <= services, f"docs/deploy-role-policy.json lacks {sorted(used - services)}"
    # HTTP API access logs are set up with the caller's permissions.
    for needed in ("logs:CreateLogDelivery", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups", "iam:PassRole", "ssm:PutParameter", "s3:PutMetricsConfiguration"):
        assert needed in actions, needed
    # Auto scaling of a provisioned table: its targets and policies, the
    # service-linked role Application Auto Scaling creates at the first
    # RegisterScalableTarget (only that role), and the function URL.
    for needed in ("application-autoscaling:RegisterScalableTarget", "application-autoscaling:PutScalingPolicy", "application-autoscaling:DescribeScalableTargets", "lambda:CreateFunctionUrlConfig", "dynamodb:UpdateTable"):
        assert needed in actions, needed
    slr = [st for st in policy["Statement"] if "iam:CreateServiceLinkedRole" in st["Action"]]
    assert len(slr) == 1 and slr[0]["Condition"] == {"StringLike": {"iam:AWSServiceName": "dynamodb.application-autoscaling.amazonaws.com"}}, slr
    assert all("AWSServiceRoleForApplicationAutoScaling_DynamoDBTable" in r for r in slr[0]["Resource"]), slr
    param = unwrap(typed(ROOT_DOC, "resource")[("aws_ssm_parameter", "api_key")]["name"])
    assert param.startswith("/${var.project}/"), param


def test_load_test_workflow_sends_the_key_only_to_allowed_targets():
    # The deployed x-api-key comes from the repository secret, never from an
    # input, and reaches the run only after the target was found in the
    # allow-list (repository variable LOADTEST_TARGETS).
    wf = (ROOT / ".github/workflows/loadtest.yml").read_text()
    inputs = wf[wf.index("inputs:") : wf.index("permissions:")]
    assert not re.search(r"key|token|secret", inputs, re.I), "no input may carry a credential"
    assert wf.count("secrets.") == 1, "the key is the only secret the workflow reads"
    key = re.search(r"GENDER_API_KEY:\s*\$\{\{(.*)\}\}", wf).group(1)
    assert "inputs.target != ''" in key and "secrets.LOADTEST_API_KEY" in key, key
    check = wf.index("vars.LOADTEST_TARGETS")
    run = wf.index("GENDER_API_KEY:")
    assert check < run, "the allow-list check must come before the step that gets the key"
    assert "grep -qxF" in wf[check:run] and "exit 1" in wf[check:run], "an exact match against the list, or the job stops"


def test_lambda_build_tools_are_pinned_in_the_deploy_path():
    tools = (ROOT / "scripts/lambda-tools").read_text()
    versions = dict(re.findall(r"^(CARGO_LAMBDA|ZIGLANG)_VERSION=(\d+\.\d+\.\d+)$", tools, re.M))
    assert set(versions) == {"CARGO_LAMBDA", "ZIGLANG"}, versions
    assert '"cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION"' in tools
    assert "scripts/lambda-tools" in (ROOT / "scripts/build-lambdas").read_text()
    assert "scripts/build-lambdas" in (ROOT / ".github/workflows/deploy.yml").read_text()
    assert re.search(r"^deploy .*: build-lambdas$", (ROOT / "Justfile").read_text(), re.M)
    # The measured zips name the same versions.
    perf = (ROOT / "docs/PERFORMANCE.md").read_text()
    assert f"cargo-lambda {versions['CARGO_LAMBDA']} with zig {versions['ZIGLANG']}" in perf


def test_daily_job_is_not_invoked_synchronously_with_cli_defaults():
    # The AWS CLI's read timeout is 60 s and it retries after it: a
    # synchronous invoke of a job that runs minutes starts it 2-4 times.
    just = (ROOT / "Justfile").read_text()
    recipe = just[just.index("\ndaily ") : just.index("\nlogs ")]
    assert "--invocation-type Event" in recipe, recipe
    deploy = (ROOT / "docs/DEPLOY.md").read_text()
    invokes = re.findall(r"(?:AWS_MAX_ATTEMPTS=\d+ )?aws lambda invoke[^`]*?(?:/dev/\w+|\S+\.json)", deploy, re.S)
    assert len(invokes) >= 2, "DEPLOY.md shows how to run the daily job by hand"
    for cmd in invokes:
        assert "--invocation-type Event" in cmd or ("--cli-read-timeout 0" in cmd and "AWS_MAX_ATTEMPTS=1" in cmd), cmd


def test_schema_check_reports_the_planted_mistakes():
    import tf_schema_check

    findings = tf_schema_check.Checker(Path(__file__).resolve().parent / "fixtures/broken").run()
    text = "\n".join(findings)
    expected = [
        'unknown argument or block "force_destory"',
        'unknown argument or block "versioning_configuraton"',
        'required argument or block "versioning_configuration" is missing',
        'unknown argument or block "log_formt"',
        'required argument or block "log_format" is missing',
        'required argument or block "role" is missing',
        "unknown resource type",
        'has no variable "colour"',
        'required variable "size"',
        'has no output "nope"',
        'reference var.nmae: no variable "nmae"',
        'reference aws_iam_policy.missing.arn: no aws_iam_policy "missing"',
        'aws_s3_bucket has no attribute "arnn"',
        'reference local.fn: no local "fn"',
        "variable untyped: house style: no type",
        "house style: no versions.tf",
    ]
    for e in expected:
        assert e in text, f"not reported: {e}\n{text}"
    assert len(findings) == len(expected), text


def test_schema_check_passes_on_terraform():
    import tf_schema_check

    findings = tf_schema_check.Checker(TF).run()
    assert findings == [], "\n".join(findings)


def main():
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f)]
    failed = 0
    for name, fn in tests:
        try:
            fn()
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001 - report every failure
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
