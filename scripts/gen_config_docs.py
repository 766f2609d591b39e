#!/usr/bin/env python3
"""Regenerates the key table of docs/configuration.md.

Keys, types and defaults come from the built executable (`reid-train --list-keys`); the meaning
of each key is the `///` comment above its field in include/reid/config/config.h. Run after
changing a config struct:  python3 scripts/gen_config_docs.py build/bin/reid-train
tests/config/test_config_docs.cpp fails when the table is out of date.
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- keys:begin -->", "<!-- keys:end -->"


def parse_header(text):
    """{struct: {field: (type, comment)}} from the `///`-commented fields of config.h."""
    structs, current, comment = {}, None, []
    for line in text.splitlines():
        stripped = line.strip()
        m = re.match(r"struct (\w+) \{", stripped)
        if m:
            current, comment = m.group(1), []
            structs[current] = {}
            continue
        if stripped.startswith("///"):
            comment.append(stripped[3:].strip())
            continue
        m = re.match(r"([\w:<>, ]+?)\s+(\w+)(\s*=.*|\s*\{.*\})?;$", stripped)
        if current and m and comment and "(" not in stripped.split("=")[0]:
            structs[current][m.group(2)] = (m.group(1).strip(), " ".join(comment))
        comment = []
    return structs


def meaning(structs, path):
    struct = "Config"
    parts = path.split(".")
    for part in parts[:-1]:
        struct = structs[struct][part][0]
    return structs[struct][parts[-1]][1]


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "build/bin/reid-train")
    rows = subprocess.run([exe, "--list-keys"], check=True, capture_output=True, text=True).stdout
    structs = parse_header((ROOT / "include/reid/config/config.h").read_text())
    table = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for row in rows.strip().splitlines():
        path, type_name, default = row.split("\t")
        table.append(f"| `{path}` | {type_name} | `{default}` | {meaning(structs, path)} |")
    doc_path = ROOT / "docs/configuration.md"
    doc = doc_path.read_text()
    start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    doc_path.write_text(doc[:start] + "\n" + "\n".join(table) + "\n" + doc[end:])


if __name__ == "__main__":
    main()
