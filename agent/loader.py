"""Start the agent zipapp only if it is byte for byte the one that was sent.

The harness sends this file's text inline, as ``python3 -c <text> PYZ SHA256 COMMAND ...``,
since it has to run before anything on the board can be trusted.  It reads the zipapp
once, checks the sha256 of those bytes, and runs the archive's ``__main__.py`` with the
agent imported from the same bytes in memory -- so a file swapped after the check is never
executed.  A mismatch prints :data:`REFUSED_MARK` on stderr and exits :data:`REFUSED`.
Standard library only; Python 3.8+.
"""

import sys

if __name__ == "__main__":
    # -c puts the current directory (the board user's home over SSH) first on sys.path: a
    # hashlib.py or zipfile.py lying there must not be imported before the check.
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]

import hashlib
import importlib.util
import io
import zipfile

REFUSED = 65  # EX_DATAERR
REFUSED_MARK = "edgebench-loader: refused"


class ArchiveImporter:
    """Finds and loads modules from an in-memory zip archive (a meta path finder)."""

    def __init__(self, data: bytes) -> None:
        self.archive = zipfile.ZipFile(io.BytesIO(data))
        self.names = set(self.archive.namelist())

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        base = fullname.replace(".", "/")
        for name, package in ((base + "/__init__.py", True), (base + ".py", False)):
            if name in self.names:
                return importlib.util.spec_from_loader(
                    fullname, self, origin=name, is_package=package
                )
        return None

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return None  # the default module object

    def exec_module(self, module) -> None:  # type: ignore[no-untyped-def]
        name = module.__spec__.origin
        exec(compile(self.archive.read(name), name, "exec"), module.__dict__)

    def get_source(self, fullname: str) -> str:  # for tracebacks
        spec = self.find_spec(fullname)
        return self.archive.read(spec.origin).decode("utf-8") if spec else ""


def main() -> int:
    path, want = sys.argv[1], sys.argv[2]
    with open(path, "rb") as fh:
        data = fh.read()
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        sys.stderr.write(
            "%s: %s has sha256 %s..., not the %s... that was sent; not executed\n"
            % (REFUSED_MARK, path, got[:16], want[:16])
        )
        return REFUSED
    importer = ArchiveImporter(data)
    sys.meta_path.insert(0, importer)
    sys.argv = [path] + sys.argv[3:]
    # what ``python3 PYZ`` would do: the archive's __main__.py, run as __main__
    code = compile(importer.archive.read("__main__.py"), "__main__.py", "exec")
    exec(code, {"__name__": "__main__", "__loader__": importer, "__builtins__": __builtins__})
    return 0


if __name__ == "__main__":
    sys.exit(main())
