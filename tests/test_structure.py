"""benchmarks/structure.py on a tiny synthetic package whose cycles, private imports and other facts are known."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "structure.py"


@pytest.fixture(scope="module")
def structure():
    spec = importlib.util.spec_from_file_location("structure_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


FILES = {
    "__init__.py": '"""pkg."""\n',
    # a <-> b at module scope: the one import-time cycle
    "a.py": "from pkg import b\n_secret = 1\n\n\ndef run():\n    return b\n",
    "b.py": "import pkg.a\n",
    # g -> h at module scope, h -> g only inside a function: a cycle once function-scope imports count
    "g.py": "from pkg.h import helper\n",
    "h.py": ("from pkg.extras import require\n\n\ndef helper():\n    from pkg import g\n    import torch\n"
             "    return g, torch, require('onnxruntime.capi', 'onnx')\n"),
    "extras.py": "import importlib\n\n\ndef require(name, extra):\n    return importlib.import_module(name)\n",
    # the one private name imported across modules; a dunder does not count
    "c.py": "from pkg.a import _secret\nfrom pkg import __doc__ as doc\n",
    # a type-checking-only import back to c: no runtime cycle, one in the all-scopes graph
    "d.py": ("from typing import TYPE_CHECKING\nfrom pkg.c import doc\nfrom pkg.models.net import Net\n"
             "if TYPE_CHECKING:\n    from pkg.e import E\n\n\ndef is_net(x):\n    return isinstance(x, (Net, int))\n"),
    "e.py": "from pkg import d\n\n\nclass E:\n    pass\n",
    "models/__init__.py": "",
    "models/net.py": "class Net:\n    pass\n\n\ndef same(x):\n    return isinstance(x, Net)\n",
    "attacks/__init__.py": "",
    "attacks/score.py": "def score(x):\n    return x\n",
    "attacks/registry.py": 'SPECS = {"score": "score:score", "ratio": "a:b", "time": "12:30"}\n',
    "long.py": "x = 1\n" * 401,
}


@pytest.fixture()
def package(tmp_path):
    root = tmp_path / "pkg"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "stale.py").write_text("import pkg.a\n")
    return root


def test_structure_reports_exactly_the_known_facts(structure, package):
    facts = structure.analyse(package)
    assert facts["modules"] == 15  # __pycache__ left out
    assert facts["top_level"] == {"modules": ["a", "b", "c", "d", "e", "extras", "g", "h", "long"],
                                  "folders": ["attacks", "models"], "n_modules": 9, "n_folders": 2}
    assert facts["long_modules"] == [{"module": "pkg.long", "lines": 401}]
    cyc = facts["cycles"]
    assert cyc["module_scope"] == {"components": [["pkg.a", "pkg.b"]], "pairs": [["pkg.a", "pkg.b"]]}
    assert cyc["module_and_function_scope"]["components"] == [["pkg.a", "pkg.b"], ["pkg.g", "pkg.h"]]
    assert cyc["all_scopes"]["components"] == [["pkg.a", "pkg.b"], ["pkg.d", "pkg.e"], ["pkg.g", "pkg.h"]]
    assert cyc["stages"]["components"] == [["a", "b"], ["g", "h"]]
    assert facts["imports"]["internal_type_checking"] == 1
    assert facts["imports"]["internal_function_scope"] == 1
    fl = facts["function_local_imports"]
    assert (fl["total"], fl["internal"], fl["heavy"], fl["heavy_by_package"]) == (2, 1, 1, {"torch": 1})
    assert facts["on_demand_imports"]["by_package"] == {"onnxruntime": 1}
    assert facts["dynamic_imports"]["sites"] == [{"module": "pkg.extras", "line": 5}]
    assert facts["private_imports"]["count"] == 1
    assert facts["private_imports"]["sites"] == [{"module": "pkg.c", "line": 1, "source": "pkg.a",
                                                  "name": "_secret", "scope": "module"}]
    assert facts["isinstance_on_model_classes"]["sites"] == [{"module": "pkg.d", "line": 9, "cls": "Net"}]
    assert facts["string_resolved_functions"]["sites"] == [
        {"module": "pkg.attacks.registry", "line": 1, "resolves_to": "pkg.attacks.score:score"}]


def test_structure_cli_writes_json_and_refuses_a_missing_folder(structure, package, tmp_path, capsys):
    out = tmp_path / "facts.json"
    assert structure.main([str(package), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "top level: 9 modules beside 2 folders" in printed and "pkg.a <-> pkg.b" in printed
    assert json.loads(out.read_text())["private_imports"]["count"] == 1
    assert structure.main([str(tmp_path / "nope"), "--out", str(out)]) == 2
