"""The entry-point registry: real distributions on sys.path, laziness, clashes, helpful errors."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from depthlab import losses
from depthlab.errors import ConfigError
from depthlab.registry import PluginError, Registry, build_from_spec

PLUGIN_MODULE = "depthlab_test_plugin"


def make_distribution(root: Path, name: str, entry_points: dict[str, dict[str, str]], version: str = "1.0") -> Path:
    """Write ``<name>-<version>.dist-info`` with METADATA and entry_points.txt, as pip installs it."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    sections = []
    for group, points in entry_points.items():
        sections.append(f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items()))
    (info / "entry_points.txt").write_text("\n".join(sections))
    return info


@pytest.fixture
def third_party_loss(tmp_path, monkeypatch):
    """A package outside depthlab that registers the loss ``tenfold_l1``."""
    (tmp_path / f"{PLUGIN_MODULE}.py").write_text(
        textwrap.dedent(
            '''
            from depthlab.losses.base import DepthLoss, masked_mean


            class TenfoldL1(DepthLoss):
                """Ten times the mean absolute error (a test plugin)."""

                def __init__(self, factor: float = 10.0) -> None:
                    super().__init__()
                    self.factor = factor

                def forward(self, pred, target, mask, image=None):
                    return self.factor * masked_mean((pred - target).abs(), mask)
            '''
        )
    )
    make_distribution(tmp_path, "depthlab-test-plugin", {"depthlab.losses": {"tenfold_l1": f"{PLUGIN_MODULE}:TenfoldL1"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    monkeypatch.undo()  # sys.path first, then forget the plugin everywhere
    sys.modules.pop(PLUGIN_MODULE, None)
    losses.REGISTRY.refresh()


def test_third_party_plugin_is_found_and_built_by_name(third_party_loss):
    registry = Registry("depthlab.losses", "loss")
    assert "tenfold_l1" in registry.available()
    assert "silog" in registry.available()  # depthlab's own losses come through the same door
    assert registry.distribution_of("tenfold_l1") == "depthlab-test-plugin"
    assert registry.distribution_of("silog") == "depthlab"
    assert PLUGIN_MODULE not in sys.modules  # listing does not import the plugin
    loss = registry.build("tenfold_l1", factor=3.0)
    assert PLUGIN_MODULE in sys.modules
    pred, target = torch.tensor([[[[1.0, 2.0]]]]), torch.tensor([[[[1.5, 2.0]]]])
    assert loss(pred, target, torch.ones_like(pred, dtype=torch.bool)).item() == pytest.approx(3.0 * 0.25)
    assert registry.describe("tenfold_l1") == "Ten times the mean absolute error (a test plugin)."


def test_third_party_plugin_through_depthlab_losses_after_refresh(third_party_loss):
    losses.REGISTRY.refresh()  # the shared registry caches its scan; a run-time install needs this
    assert "tenfold_l1" in losses.available()
    objective = losses.build_objective([{"name": "silog"}, {"name": "tenfold_l1", "weight": 0.5}])
    assert list(objective.terms) == ["silog", "tenfold_l1"]
    assert "tenfold_l1" in losses.REGISTRY.table()


def test_two_distributions_claiming_one_name_is_an_error_naming_both(tmp_path, monkeypatch):
    make_distribution(tmp_path / "a", "alpha-losses", {"depthlab.test_clash": {"twin": "alpha_losses:Twin"}})
    make_distribution(tmp_path / "b", "beta-losses", {"depthlab.test_clash": {"twin": "beta_losses:Twin"}})
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    monkeypatch.syspath_prepend(str(tmp_path / "b"))
    registry = Registry("depthlab.test_clash", "thing")
    with pytest.raises(PluginError) as info:
        registry.available()
    message = str(info.value)
    assert "'twin'" in message and "alpha-losses" in message and "beta-losses" in message


def test_one_distribution_seen_twice_on_sys_path_is_not_a_clash(tmp_path, monkeypatch):
    # An editable install leaves <project>.egg-info in the source tree (on sys.path when run from
    # there) next to the .dist-info in site-packages; an outdated copy must not count as a rival.
    make_distribution(tmp_path / "first", "gamma-losses", {"depthlab.test_twice": {"one": "gamma:One"}})
    make_distribution(tmp_path / "second", "gamma_losses", {"depthlab.test_twice": {"one": "gamma_old:One", "two": "gamma:Two"}})
    monkeypatch.syspath_prepend(str(tmp_path / "second"))
    monkeypatch.syspath_prepend(str(tmp_path / "first"))  # first on sys.path wins, as for imports
    registry = Registry("depthlab.test_twice", "thing")
    assert registry.available() == ["one"]
    assert registry._lookup("one").entry_point.value == "gamma:One"


@pytest.fixture
def fake_group(tmp_path, monkeypatch):
    make_distribution(tmp_path, "delta-things", {"depthlab.test_names": {
        "silog": "depthlab.losses.silog:SiLogLoss",
        "silog_bts": "depthlab.losses.silog:silog_bts",
        "berhu": "depthlab.losses.pointwise:BerHuLoss",
        "broken": "depthlab_no_such_module:Thing",
    }})
    monkeypatch.syspath_prepend(str(tmp_path))
    return Registry("depthlab.test_names", "thing")


def test_unknown_name_lists_known_names_and_suggests(fake_group):
    with pytest.raises(PluginError) as info:
        fake_group.get("silgo")
    message = str(info.value)
    assert "unknown thing 'silgo'" in message
    assert "Did you mean 'silog'" in message
    assert "Known things: berhu, broken, silog, silog_bts." in message
    with pytest.raises(PluginError, match="Did you mean 'silog'"):
        fake_group.get("SiLog")  # case does not hide the suggestion
    with pytest.raises(PluginError) as info:
        fake_group.get("zzzzzz")
    assert "Did you mean" not in str(info.value) and "Known things" in str(info.value)


def test_unknown_loss_through_depthlab_losses():
    with pytest.raises(PluginError) as info:
        losses.build("berhuu")
    message = str(info.value)
    assert "Did you mean 'berhu'" in message
    assert all(name in message for name in losses.available())


def test_a_plugin_that_fails_to_import_is_named_and_does_not_hide_the_others(fake_group):
    with pytest.raises(PluginError, match=r"'broken'.*delta-things.*failed to load: ModuleNotFoundError"):
        fake_group.get("broken")
    table = fake_group.table()
    assert "broken" in table and "(cannot load" in table
    assert "BTS SiLog" in table


def test_wrong_argument_names_the_plugin(fake_group):
    with pytest.raises(ConfigError, match="thing 'berhu'.*fractoin"):
        fake_group.build("berhu", fractoin=0.3)


def test_build_from_spec_forms(fake_group):
    assert build_from_spec(fake_group, "berhu", "x").fraction == 0.2
    assert build_from_spec(fake_group, {"name": "berhu", "fraction": 0.3}, "x").fraction == 0.3
    loss = build_from_spec(fake_group, {"class_path": "depthlab.losses.pointwise.BerHuLoss", "init_args": {"fraction": 0.4}}, "x")
    assert loss.fraction == 0.4
    with pytest.raises(PluginError, match="cannot import class_path"):
        build_from_spec(fake_group, {"class_path": "depthlab.losses.nowhere.Nothing"}, "x")
    with pytest.raises(PluginError, match="needs a 'name'.*berhu"):
        build_from_spec(fake_group, {"fraction": 0.3}, "x")


def test_empty_group():
    registry = Registry("depthlab.test_nothing_registered", "widget")
    assert registry.available() == [] and registry.table() == ""
    with pytest.raises(PluginError, match=r"Known widgets: \(none\)"):
        registry.get("anything")


def test_refresh_sees_a_distribution_installed_at_run_time(tmp_path, monkeypatch):
    registry = Registry("depthlab.test_late", "thing")
    assert registry.available() == []
    make_distribution(tmp_path, "late-things", {"depthlab.test_late": {"late": "depthlab.losses.pointwise:L1Loss"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry.available() == []  # cached scan
    registry.refresh()
    assert registry.available() == ["late"]


@pytest.mark.slow  # a subprocess (a fresh interpreter, to see what is imported)
def test_lookup_is_lazy():
    code = textwrap.dedent(
        """
        import sys
        import depthlab.losses as L
        plugins = [m for m in sys.modules if m.startswith("depthlab.losses.") and m != "depthlab.losses.base"]
        assert plugins == [], plugins
        names = L.available()
        assert "l1" in names and "depthlab.losses.pointwise" not in sys.modules
        L.build("l1")
        assert "depthlab.losses.pointwise" in sys.modules
        assert "depthlab.losses.relative" not in sys.modules
        print("lazy")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "lazy"


def test_cli_lists_losses_with_descriptions(capsys):
    from depthlab.cli import main

    assert main(["losses"]) == 0
    out = capsys.readouterr().out
    for name in losses.available():
        assert name in out
    assert "Reverse Huber" in out
