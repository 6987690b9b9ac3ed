"""The section-3 man pages against the public headers: every MS_EXPORT
function of include/msgsock/*.h has a page man/<name>.3 (the page that
documents it, or a `.so` to it) that names it in its NAME section and shows
its prototype in its SYNOPSIS exactly as the header declares it (parameter
names included, whitespace aside); every typedef of the headers is named
in some page; no page names a function that does not exist. A function
added, renamed or changed without its page fails here."""
import os
import re
import unittest

from mstest import MsTestCase

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INCLUDE = os.path.join(ROOT, "include", "msgsock")
MANDIR = os.path.join(ROOT, "man")


def strip_comments(text):
    return re.sub(r"/\*.*?\*/", " ", text, flags=re.S)


def normalize(decl):
    """One spelling of a declaration: single spaces, none next to
    punctuation, no trailing semicolon."""
    decl = re.sub(r"\s+", " ", decl).strip().rstrip(";").strip()
    return re.sub(r" ?([(),*\[\]]) ?", r"\1", decl)


def header_exports():
    """{name: normalized prototype} of every MS_EXPORT function."""
    found = {}
    for h in sorted(os.listdir(INCLUDE)):
        if not h.endswith(".h"):
            continue
        with open(os.path.join(INCLUDE, h)) as f:
            text = strip_comments(f.read())
        for m in re.finditer(r"^MS_EXPORT\s+([^;]*?);", text, re.M | re.S):
            decl = m.group(1)
            name = re.search(r"(ms_\w+)\s*\(", decl).group(1)
            found[name] = normalize(decl)
    return found


def header_identifiers():
    """Every ms_ identifier the headers spell (functions, inline ones, types)."""
    words = set()
    for h in os.listdir(INCLUDE):
        with open(os.path.join(INCLUDE, h)) as f:
            words |= set(re.findall(r"\bms_\w+", strip_comments(f.read())))
    return words


def header_typedefs():
    names = set()
    for h in os.listdir(INCLUDE):
        with open(os.path.join(INCLUDE, h)) as f:
            text = strip_comments(f.read())
        names |= set(re.findall(r"\}\s*(ms_\w+)\s*;", text))
        names |= set(re.findall(r"typedef\s[^;{(]*\b(ms_\w+)\s*;", text))
        names |= set(re.findall(r"typedef\s+\w[^;(]*\(\s*\*\s*(ms_\w+)\s*\)", text))
    return names


def read_page(name):
    with open(os.path.join(MANDIR, name)) as f:
        return f.read()


def resolve(name):
    """(file, text) of the page man/name shows, following one `.so`."""
    text = read_page(name)
    m = re.match(r"\.so man\d/(\S+)\s*$", text)
    if m:
        return m.group(1), read_page(m.group(1))
    return name, text


def section(text, title):
    m = re.search(r"^\.SH " + title + r"\n(.*?)(?=^\.SH )", text, re.M | re.S)
    return m.group(1) if m else ""


def roff_text(lines):
    """The words of roff lines as they print (fonts and quoting undone)."""
    out = []
    for line in lines.splitlines():
        if line.startswith(".\\\"") or line in (".nf", ".fi", ".PP", ".br"):
            continue
        m = re.match(r"\.(BI|BR|IB|IR|RB|RI|B|I)(?:\s+(.*))?$", line)
        if m:
            args = re.findall(r'"((?:[^"]|"")*)"|(\S+)', m.group(2) or "")
            args = [a or b for a, b in args]
            line = (" " if len(m.group(1)) == 1 else "").join(args)
        elif line.startswith("."):
            continue
        line = re.sub(r"\\f[BIRP]", "", line)
        for roff, c in ((r"\e", "\\"), (r"\-", "-"), (r"\(aq", "'"), (r"\(dq", '"'), ("\\&", "")):
            line = line.replace(roff, c)
        out.append(line)
    return "\n".join(out)


def name_section(text):
    return set(re.findall(r"\bms_\w+", section(text, "NAME").split("\\-")[0]))


class ManPagesTest(MsTestCase):
    def test_every_exported_function_has_a_page(self):
        exports = header_exports()
        self.assertIn("ms_conn_connect", exports)
        self.assertIn("ms_recv_msg", exports)
        for name, proto in sorted(exports.items()):
            with self.subTest(function=name):
                path = os.path.join(MANDIR, name + ".3")
                self.assertTrue(os.path.isfile(path), f"no man/{name}.3 (a page or a .so to one)")
                page, text = resolve(name + ".3")
                self.assertIn(name, name_section(text), f"{page}: NAME does not name {name}")
                synopsis = normalize(roff_text(section(text, "SYNOPSIS")))
                self.assertTrue(proto in synopsis, f"{page}: SYNOPSIS lacks the header's {proto}")

    def test_so_pages_point_at_pages_that_name_them(self):
        for f in sorted(os.listdir(MANDIR)):
            text = read_page(f)
            m = re.match(r"\.so man(\d)/(\S+)\s*$", text)
            if not m:
                continue
            with self.subTest(page=f):
                self.assertTrue(os.path.isfile(os.path.join(MANDIR, m.group(2))), text)
                self.assertEqual(m.group(1), m.group(2)[-1])
                self.assertIn(f[:-2], name_section(read_page(m.group(2))))

    def test_pages_name_only_what_exists(self):
        known = header_identifiers() | {f[:-2] for f in os.listdir(MANDIR)}
        for f in sorted(os.listdir(MANDIR)):
            text = read_page(f)
            if text.startswith(".so"):
                continue
            words = set(re.findall(r"\bms_\w+", roff_text(text))) | name_section(text)
            with self.subTest(page=f):
                self.assertEqual(sorted(w for w in words if w not in known), [],
                                 f"{f} names what no header declares")

    def test_every_public_type_is_documented(self):
        types = header_typedefs()
        self.assertIn("ms_connect_opts", types)
        self.assertIn("ms_log_record_fn", types)
        pages = " ".join(roff_text(read_page(f)) for f in os.listdir(MANDIR))
        for t in sorted(types):
            with self.subTest(type=t):
                self.assertTrue(re.search(r"\b" + t + r"\b", pages), f"no page mentions {t}")


if __name__ == "__main__":
    unittest.main()
