#!/usr/bin/env python3
"""Makes the scratch copy of terraform/ that `terraform validate` and
`terraform test` (terraform/tests/*.tftest.hcl) run in.

  tf_test_copy.py DEST                # keep the pinned providers (CI, with the registry)
  tf_test_copy.py DEST --mirror DIR   # offline: hashicorp/aws from a filesystem mirror

Always: copies terraform/ to DEST (no state, no .terraform, no lock file)
and writes a placeholder DEST/tests/artifacts/<binary>/bootstrap.zip (an
empty zip) for the [[bin]] of every crate under functions/, which the tests
pass as lambda_artifacts_dir (the lambda module hashes the zip at plan time).

With --mirror, DIR holding registry.terraform.io/hashicorp/aws/<version>/<platform>/:
- the copy is pinned to the newest hashicorp/aws version of the mirror
  (the repository pins 6.25.0; the machines may carry another one);
- for an aws major version below 6, the arguments terraform/ uses that
  exist only in 6.x are left out (ADAPT_BELOW_6, each of which must be
  found, so this list cannot go stale silently);
- hashicorp/random, when the mirror lacks it, is replaced by a stand-in:
  every `resource "random_password" "X"` becomes a `terraform_data` holding
  a fixed string of the same length, and `random_password.X.result` its
  `output`, in the .tf and the .tftest.hcl files alike;
- DEST/.terraform.lock.hcl is tests/contract/terraform-test.lock.hcl when
  that file records the mirror's version (init then checks the mirror's
  package against the committed checksum).
Prints one line per adaptation. Exits non-zero when an expected pattern is
missing.
"""
import argparse
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "terraform"
LOCK = Path(__file__).resolve().parent / "terraform-test.lock.hcl"
# An empty zip archive: just the end-of-central-directory record.
EMPTY_ZIP = b"PK\x05\x06" + b"\x00" * 18

# (file relative to the copy, what is left out, why) for hashicorp/aws < 6.
ADAPT_BELOW_6 = [
    ("modules/dynamodb/main.tf", 'dynamic "warm_throughput"', "warm_throughput (DynamoDB warm throughput) is a 6.x argument"),
    ("tests/warm_throughput.tftest.hcl", None, "tests warm_throughput, a 6.x argument"),
]


def version_key(v):
    return tuple(int(p) if p.isdigit() else 0 for p in re.split(r"[.-]", v))


def mirror_versions(mirror, name):
    base = Path(mirror) / "registry.terraform.io" / "hashicorp" / name
    return sorted((p.name for p in base.iterdir() if p.is_dir()), key=version_key) if base.is_dir() else []


def block_span(text, start):
    """(start, end) of the block whose header begins at start, end after its closing brace and newline."""
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            line_start = text.rfind("\n", 0, start) + 1
            return line_start, text.find("\n", j) + 1
    raise ValueError("unbalanced braces")


def remove_block(text, header):
    at = text.find(header)
    if at < 0:
        return None
    start, end = block_span(text, at)
    return text[:start] + text[end:]


def hcl_files(dest):
    return [p for p in dest.rglob("*") if p.suffix in (".tf",) or p.name.endswith(".tftest.hcl")]


def pin(dest, provider, version):
    """Pins provider to exactly version in every versions.tf of the copy."""
    count = 0
    for f in dest.rglob("versions.tf"):
        text = f.read_text()
        new, n = re.subn(
            r'(%s\s*=\s*\{\s*source\s*=\s*"hashicorp/%s"\s*version\s*=\s*)"[^"]*"' % (provider, provider),
            r'\g<1>"%s"' % version,
            text,
        )
        if n:
            f.write_text(new)
            count += n
    if not count:
        sys.exit(f"tf_test_copy: no required_providers entry for {provider} found")
    return count


def stand_in_random(dest):
    """Replaces random_password resources by terraform_data of the same length."""
    names = []
    for f in dest.rglob("*.tf"):
        text = f.read_text()
        while True:
            m = re.search(r'resource "random_password" "(\w+)" \{', text)
            if not m:
                break
            start, end = block_span(text, m.start())
            length = int(re.search(r"length\s*=\s*(\d+)", text[start:end]).group(1))
            names.append(m.group(1))
            stand_in = (
                f'resource "terraform_data" "random_password_{m.group(1)}" {{\n'
                f'  # stand-in for random_password (hashicorp/random is not in the provider mirror)\n'
                f'  input = "{"x" * length}"\n}}\n'
            )
            text = text[:start] + stand_in + text[end:]
        f.write_text(text)
    if not names:
        sys.exit("tf_test_copy: no random_password resource found to stand in for")
    for f in hcl_files(dest):
        text = f.read_text()
        new = re.sub(r"\brandom_password\.(\w+)\.result\b", r"terraform_data.random_password_\1.output", text)
        # The random provider is no longer required by the copy.
        if f.name == "versions.tf":
            new = re.sub(r'\n\s*random\s*=\s*\{[^}]*\}', "", new)
        if f.name.endswith(".tftest.hcl"):
            new = re.sub(r'\nmock_provider "random" \{\}\n', "\n", new)
        if new != text:
            f.write_text(new)
    return names


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--mirror", type=Path, help="filesystem mirror holding registry.terraform.io/hashicorp/aws/<version>/")
    args = ap.parse_args(argv[1:])
    dest = args.dest.resolve()

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(
        TF,
        dest,
        ignore=shutil.ignore_patterns(".terraform", "*.tfstate", "*.tfstate.*", ".terraform.lock.hcl", "*_override.tf", "tfplan", "terraform.tfvars"),
    )
    binaries = []
    for cargo in sorted((ROOT / "functions").glob("*/Cargo.toml")):
        binaries += re.findall(r"\[\[bin\]\]\s*\nname\s*=\s*\"([^\"]+)\"", cargo.read_text())
    for binary in binaries:
        zip_path = dest / "tests" / "artifacts" / binary / "bootstrap.zip"
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        zip_path.write_bytes(EMPTY_ZIP)
    print(f"tf_test_copy: {dest}: placeholder zips for {', '.join(binaries)}")

    if args.mirror is None:
        print("tf_test_copy: providers as pinned in terraform/versions.tf (installed from the registry)")
        return 0

    aws = mirror_versions(args.mirror, "aws")
    if not aws:
        sys.exit(f"tf_test_copy: no hashicorp/aws in {args.mirror}")
    version = aws[-1]
    pin(dest, "aws", version)
    print(f"tf_test_copy: hashicorp/aws pinned to {version}, the mirror's (terraform/ pins 6.25.0)")
    if version_key(version)[0] < 6:
        for rel, header, why in ADAPT_BELOW_6:
            path = dest / rel
            if header is None:
                if not path.exists():
                    sys.exit(f"tf_test_copy: {rel} is gone: update ADAPT_BELOW_6")
                path.unlink()
            else:
                text = remove_block(path.read_text(), header)
                if text is None:
                    sys.exit(f"tf_test_copy: {header} not found in {rel}: update ADAPT_BELOW_6")
                path.write_text(text)
            print(f"tf_test_copy: aws {version} < 6: left out {rel}{' ' + header if header else ''} ({why})")

    random = mirror_versions(args.mirror, "random")
    if random:
        pin(dest, "random", random[-1])
        print(f"tf_test_copy: hashicorp/random pinned to {random[-1]}, the mirror's")
    else:
        names = stand_in_random(dest)
        print(f"tf_test_copy: hashicorp/random is not in the mirror: random_password {', '.join(names)} stood in for by terraform_data")

    lock_text = LOCK.read_text() if LOCK.exists() else ""
    lock_version = re.search(r'provider "registry.terraform.io/hashicorp/aws" \{\s*version\s*=\s*"([^"]+)"', lock_text)
    if lock_version and lock_version.group(1) == version and not random:
        shutil.copy(LOCK, dest / ".terraform.lock.hcl")
        print(f"tf_test_copy: lock file {LOCK.relative_to(ROOT)} (aws {version}): init verifies the mirror's package against it")
    else:
        print(f"tf_test_copy: {LOCK.relative_to(ROOT)} does not record aws {version}: the mirror's package is not checked against a committed checksum")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
