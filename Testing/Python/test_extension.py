"""Static checks of the Slicer extension: CMake lists every file (and the README's layout every Lib module), the .ui
holds every widget the module uses, the module file imports nothing outside Slicer at file scope, the code is the
Python older Slicers bundle, and the documents' contents list their sections."""
import ast
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from conftest import README

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "SpinalStenosis"


def listed_files() -> set[str]:
    text = (MODULE / "CMakeLists.txt").read_text(encoding="utf-8")
    return set(re.findall(r"^\s+((?:SpinalStenosisLib|Resources)/\S+)", text, re.MULTILINE))


def test_every_lib_file_and_resource_is_listed_and_exists():
    listed = {name.replace("${MODULE_NAME}", "SpinalStenosis") for name in listed_files()}
    python_files = {str(p.relative_to(MODULE)) for p in (MODULE / "SpinalStenosisLib").rglob("*.py")}
    assert python_files <= listed, python_files - listed
    resources = {str(p.relative_to(MODULE)) for p in (MODULE / "Resources").rglob("*") if p.is_file()}
    assert resources <= listed, resources - listed
    missing = [name for name in listed if not (MODULE / name).exists()]
    assert not missing


def test_the_readme_layout_names_every_lib_module():
    layout = README.read_text(encoding="utf-8").split("\n## Layout\n")[1].split("\n## ")[0]
    lib = MODULE / "SpinalStenosisLib"
    modules = {p.name for p in lib.glob("*.py") if p.name != "__init__.py"} | {"synth/"}
    assert {name for name in modules if name not in layout} == set()


@pytest.mark.parametrize("document", [README, ROOT / "benchmarks" / "EVALUATION.md",
                                      ROOT / "benchmarks" / "EXPERIMENTS.md"], ids=lambda path: path.name)
def test_the_contents_link_every_section_in_order(document: Path):
    """Each `##`/`###` heading after a document's contents is listed there, by the anchor GitHub gives it (for
    ASCII headings: lower case, without punctuation or other characters, spaces as hyphens)."""
    after_contents = document.read_text(encoding="utf-8").split("\n## Contents\n")[1]
    contents = after_contents.split("\n## ")[0]
    links = re.findall(r"^( *)\* \[[^\]]+\]\(#([\w-]+)\)$", contents, re.MULTILINE)
    headings = re.findall(r"^(##+) (.+)$", after_contents, re.MULTILINE)

    def anchor(title: str) -> str:
        return re.sub(r"[^a-z0-9_\- ]", "", title.lower()).replace(" ", "-")

    assert [(len(indent) // 2, target) for indent, target in links] == [
        (len(hashes) - 2, anchor(title)) for hashes, title in headings]


def test_ui_file_parses_and_holds_every_widget_the_module_uses():
    tree = ElementTree.parse(MODULE / "Resources" / "UI" / "SpinalStenosis.ui")
    names = {widget.get("name") for widget in tree.iter("widget")}
    used = set(re.findall(r"self\.ui\.(\w+)", (MODULE / "SpinalStenosis.py").read_text(encoding="utf-8")))
    assert used <= names, used - names
    parameters = {p.find("string").text for p in tree.iter("property") if p.get("name") == "SlicerParameterName"}
    source = (MODULE / "SpinalStenosis.py").read_text(encoding="utf-8")
    fields = set(re.findall(r"^    (\w+): ", source.split("class SpinalStenosisParameterNode")[1].split("class ")[0],
                            re.MULTILINE))
    assert parameters <= fields, parameters - fields


def test_the_input_selector_offers_grey_and_colour_volumes_but_no_label_maps():
    import slicer

    tree = ElementTree.parse(MODULE / "Resources" / "UI" / "SpinalStenosis.ui")
    [selector] = [w for w in tree.iter("widget") if w.get("name") == "inputSelector"]
    properties = {p.get("name"): p for p in selector.iter("property")}
    assert [s.text for s in properties["nodeTypes"].iter("string")] == ["vtkMRMLScalarVolumeNode"]
    assert properties["showChildNodeTypes"].find("bool").text == "true"  # a vector volume is a scalar volume's child
    hidden = [s.text for s in properties["hideChildNodeTypes"].iter("string")]
    assert "vtkMRMLLabelMapVolumeNode" in hidden
    assert not any(slicer.vtkMRMLVectorVolumeNode().IsA(name) for name in hidden)


def test_module_file_imports_only_slicer_and_stdlib_at_file_scope():
    tree = ast.parse((MODULE / "SpinalStenosis.py").read_text(encoding="utf-8"))
    allowed = {"logging", "os", "typing", "qt", "slicer", "vtk", "ctk"}
    for node in tree.body:
        if isinstance(node, ast.Import):
            assert {a.name.split(".")[0] for a in node.names} <= allowed
        elif isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] in allowed, node.module
        else:
            assert isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.Assign, ast.Expr)), ast.dump(node)[:80]


def test_the_module_and_lib_are_python_3_9_which_slicer_5_0_to_5_8_bundle():
    """3D Slicer 5.0 to 5.8 bundle Python 3.9.10 (5.10 bundles 3.12): no newer syntax, and no `X | Y` annotation
    where Python evaluates annotations (in the module file: the parameter node wrapper reads them at run time)."""
    for path in [MODULE / "SpinalStenosis.py", *sorted((MODULE / "SpinalStenosisLib").rglob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))
        if any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and "annotations" in {alias.name for alias in node.names} for node in tree.body):
            continue  # annotations stay strings
        annotations = [node.annotation for node in ast.walk(tree) if isinstance(node, (ast.arg, ast.AnnAssign))]
        annotations += [node.returns for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
        unions = [ast.unparse(annotation) for annotation in filter(None, annotations)
                  if any(isinstance(part, ast.BinOp) and isinstance(part.op, ast.BitOr)
                         for part in ast.walk(annotation))]
        assert not unions, (path.name, unions)


def test_extension_metadata():
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert re.search(rf"set\({key} \"[^\"]+\"\)", text), key
    assert "add_subdirectory(SpinalStenosis)" in text
    [homepage] = re.findall(r'set\(EXTENSION_HOMEPAGE "([^"]+)"\)', text)
    assert f'HOMEPAGE = "{homepage}"' in (MODULE / "SpinalStenosis.py").read_text(encoding="utf-8")  # the help's link
    assert "category Quantification" in (ROOT / "SpinalStenosis.s4ext").read_text(encoding="utf-8")
    assert (MODULE / "Resources" / "Icons" / "SpinalStenosis.png").read_bytes()[:4] == b"\x89PNG"


def test_the_extensions_index_entry_follows_its_schema_and_the_cmake_metadata():
    """SpinalStenosis.json, the entry a pull request to Slicer's ExtensionsIndex adds: the keys and types that
    Slicer's catalog entry schema v1.0.2 allows (additionalProperties false), and the category, dependencies and
    repository the extension's CMakeLists.txt and .s4ext give."""
    import json

    entry = json.loads((ROOT / "SpinalStenosis.json").read_text(encoding="utf-8"))
    types = {"$schema": str, "category": str, "scm_url": str, "scm_revision": str, "scm_type": str,
             "build_dependencies": list, "dicom_support_rule": str, "build_subdirectory": str, "enabled": bool,
             "tier": int}
    assert {"$schema", "category", "scm_url"} <= set(entry) <= set(types)
    assert all(isinstance(value, types[key]) for key, value in entry.items())
    assert entry["$schema"].endswith("/Schemas/slicer-extension-catalog-entry-schema-v1.0.2.json#")
    assert 1 <= entry["tier"] <= 5 and entry["scm_type"] in ("git", "local")
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert f'set(EXTENSION_CATEGORY "{entry["category"]}")' in cmake
    assert f'set(EXTENSION_DEPENDS "{" ".join(entry["build_dependencies"])}")' in cmake
    s4ext = dict(line.split(" ", 1) for line in (ROOT / "SpinalStenosis.s4ext").read_text(encoding="utf-8").splitlines()
                 if line and not line.startswith("#"))
    assert (s4ext["scmurl"], s4ext["scmrevision"], s4ext["depends"], s4ext["category"]) == (
        entry["scm_url"], entry["scm_revision"], " ".join(entry["build_dependencies"]), entry["category"])


def test_lib_imports_without_slicer_or_qt():
    import subprocess
    import sys

    code = ("import sys; import SpinalStenosisLib.pipeline, SpinalStenosisLib.scene, SpinalStenosisLib.cli; "
            "assert 'qt' not in sys.modules and 'torch' not in sys.modules and 'slicer' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=MODULE)
    assert result.returncode == 0, result.stderr


def test_the_pip_package_holds_the_lib_the_command_and_the_models_it_verifies(tmp_path):
    """What `pip install .` makes of pyproject.toml, built from the tracked sources alone (no stale build folder):
    every Lib module, the console script, and the shipped networks found and verified from the installed copy."""
    import os
    import shutil
    import subprocess
    import sys
    import zipfile

    source = tmp_path / "source"
    for folder in ("SpinalStenosis/SpinalStenosisLib", "SpinalStenosis/Resources/Models"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE.txt"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--disable-pip-version-check", "--wheel-dir", str(tmp_path / "wheel"), str(source)], check=True)
    [wheel] = (tmp_path / "wheel").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [entry_points] = [n for n in names if n.endswith("entry_points.txt")]
        assert "spinal-stenosis = SpinalStenosisLib.cli:main" in archive.read(entry_points).decode()
        archive.extractall(tmp_path / "site")  # a pure-Python wheel installs as its unpacked files
    lib = MODULE / "SpinalStenosisLib"
    assert {f"SpinalStenosisLib/{p.relative_to(lib).as_posix()}" for p in lib.rglob("*.py")} <= names

    code = ("import SpinalStenosisLib.models as models; "
            "print(models.models_folder()); "
            "[models.verified_path(name) for name in models.read_manifest()['models']]")
    environment = {k: v for k, v in os.environ.items() if k != "SPINAL_STENOSIS_MODELS"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env={**environment, "PYTHONPATH": str(tmp_path / "site")})
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == tmp_path / "site" / "SpinalStenosisLib" / "_models"


SLICER_BUNDLES = {"numpy", "scipy", "SimpleITK", "vtk", "vtkmodules", "slicer", "qt", "ctk"}  # in 3D Slicer's Python
COMMAND_LINE_ONLY = {("matplotlib", "synth/gallery.py")}  # the `synth` command's gallery, never run in Slicer


def test_what_the_lib_imports_is_bundled_with_slicer_or_installed_by_the_module_when_needed():
    """In 3D Slicer only what Slicer bundles and what the module installs (its REQUIREMENTS) can be imported: anything
    else, such as a package that pip installs for the command line as another's dependency, fails there."""
    import sys

    module_source = ast.parse((MODULE / "SpinalStenosis.py").read_text(encoding="utf-8"))
    [requirements] = [ast.literal_eval(node.value) for node in module_source.body if isinstance(node, ast.Assign)
                      and [target.id for target in node.targets] == ["REQUIREMENTS"]]
    lib = MODULE / "SpinalStenosisLib"
    imported = set()
    for path in lib.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            imported |= {(name.split(".")[0], path.relative_to(lib).as_posix()) for name in names}
    third_party = {(name, file) for name, file in imported if name not in sys.stdlib_module_names}
    assert {name for name, _ in third_party} >= {"numpy", "torch", "PIL"}  # the walk sees the imports
    assert {(name, file) for name, file in third_party
            if name not in SLICER_BUNDLES | set(requirements)} == COMMAND_LINE_ONLY
    import tomllib

    pip_dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert {r.lower() for r in requirements.values()} <= {r.lower() for r in pip_dependencies}  # the same versions
