#!/usr/bin/python3
"""Validate nsrun specs against schemas/nsrun.schema.json with Debian's
python3-jsonschema, a validator independent of nsrun's Go test: every
example and good spec must pass, every bad spec must fail.

    scripts/schema-check.py            (from the repository's root)
"""
import glob
import json
import re
import sys

import jsonschema
import yaml


class Loader(yaml.SafeLoader):
    """YAML 1.2's booleans (true and false only), as nsrun and editors read
    YAML: PyYAML's YAML 1.1 would turn restart: no into false."""


Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def main():
    with open("schemas/nsrun.schema.json") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good = sorted(glob.glob("specs/examples/*.yaml") + glob.glob("specs/examples/*/*.yaml") + glob.glob("specs/testdata/schema/good/*.yaml"))
    bad = sorted(glob.glob("specs/testdata/schema/bad/*.yaml"))
    failed = 0
    for path in good:
        with open(path) as f:
            errors = list(validator.iter_errors(yaml.load(f, Loader=Loader)))
        if errors:
            failed += 1
            print(f"{path}: refused: {errors[0].message}", file=sys.stderr)
    for path in bad:
        with open(path) as f:
            if validator.is_valid(yaml.load(f, Loader=Loader)):
                failed += 1
                print(f"{path}: accepted, but it is a bad spec", file=sys.stderr)
    print(f"schema-check: {len(good)} good specs valid, {len(bad)} bad specs refused" if not failed else f"schema-check: {failed} wrong")
    return 1 if failed or len(good) < 5 or len(bad) < 5 else 0


if __name__ == "__main__":
    sys.exit(main())
