"""User code named in a config ('module:function', 'file.py:function', 'module:Class') is imported
only from the working directory and the configured paths, with a clear error otherwise
(utils/resolve.py, used by rewards, eval metrics and data.source classes)."""

from __future__ import annotations

import sys

import pytest

from lmforge.errors import ConfigError


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("userfns", "pkg", "pkg.inner", "json_like"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    (tmp_path / "userfns.py").write_text("def f(a, b):\n    return 1.0\nclass C:\n    pass\n"
                                         "X = 3\n")
    return tmp_path


def test_modules_and_files_from_the_working_directory(workdir):
    from lmforge.utils.resolve import resolve

    assert resolve("userfns:f", "t")(1, 2) == 1.0
    assert resolve("userfns.py:f", "t")(1, 2) == 1.0
    assert resolve(f"{workdir / 'userfns.py'}:C", "t", kind="class").__name__ == "C"
    (workdir / "pkg").mkdir()
    (workdir / "pkg" / "__init__.py").write_text("")
    (workdir / "pkg" / "inner.py").write_text("from userfns import f as g\n")
    assert resolve("pkg.inner:g", "t")(0, 0) == 1.0  # sibling imports work


@pytest.mark.parametrize("ref, message", [
    ("os:system", r"module 'os' not found \(searched: .*'os' is an installed module"),
    ("json.decoder:JSONDecoder", "'json' is an installed module"),
    ("nope_mod_xyz:f", "module 'nope_mod_xyz' not found"),
    ("userfns:ff", "'userfns' has no attribute 'ff'; did you mean 'f'"),
    ("userfns:X", "'X' is a int, not a function"),
    ("missing.py:f", "file 'missing.py' not found"),
    ("../escape:f", "is not a module name"),
    ("userfns", "expected 'module:name'"),
    ("userfns:", "expected 'module:name'"),
])
def test_clear_errors(workdir, ref, message):
    from lmforge.utils.resolve import resolve

    with pytest.raises(ConfigError, match=message) as err:
        resolve(ref, "eval.metrics: metric 'x'")
    assert str(err.value).splitlines()[1].strip().startswith("eval.metrics: metric 'x': ")


def test_configured_paths_are_searched_and_clashes_refused(workdir, tmp_path_factory):
    from lmforge.utils.resolve import resolve

    extra = tmp_path_factory.mktemp("lib")
    (extra / "json_like.py").write_text("def h(x):\n    return x\n")
    with pytest.raises(ConfigError, match="not found"):
        resolve("json_like:h", "t")
    assert resolve("json_like:h", "t", paths=[str(extra)])(5) == 5
    (workdir / "json.py").write_text("def loads(x):\n    return 'hijacked'\n")
    with pytest.raises(ConfigError, match="a different module named 'json' is already imported"):
        resolve("json:loads", "t")


def test_import_errors_are_config_errors(workdir):
    from lmforge.utils.resolve import resolve

    (workdir / "crashes.py").write_text("raise SystemExit(3)\n")
    with pytest.raises(ConfigError, match="importing 'crashes' failed: SystemExit"):
        resolve("crashes:f", "t")
    (workdir / "crashfile.py").write_text("1/0\n")
    with pytest.raises(ConfigError, match="running .*crashfile.py failed: ZeroDivisionError"):
        resolve("crashfile.py:f", "t")


def test_call_sites_use_the_resolver(workdir):
    from lmforge.data.user_class import load_class
    from lmforge.eval.metrics import user_metric
    from lmforge.rewards import resolve as reward

    assert user_metric("userfns:f")(["a"], ["a"]) == 1.0
    assert reward("userfns:f")(1, 2) == 1.0
    for call, ref in ((user_metric, "os:getcwd"), (reward, "os:getcwd"),
                      (load_class, "collections:OrderedDict")):
        with pytest.raises(ConfigError, match="installed module"):
            call(ref)
