"""XMILE (issue 14, item 7): the integration method of <sim_specs method=...>; modules flattened."""
from __future__ import annotations

import numpy as np
import pytest

from engine import load_model
from engine.errors import ModelError

XMILE = """<?xml version="1.0" encoding="utf-8"?>
<xmile version="1.0" xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0">
<header><vendor>{vendor}</vendor><product version="1.0" lang="en">{product}</product></header>
<sim_specs method="{method}" time_units="Months"><start>0</start><stop>4</stop><dt>1</dt></sim_specs>
<model><variables>
<stock name="s"><eqn>0</eqn><inflow>f</inflow></stock>
<flow name="f"><eqn>TIME</eqn></flow>
</variables></model></xmile>
"""


def _run(tmp_path, method, vendor="isee systems, inc.", product="Stella Architect"):
    f = tmp_path / "m.xmile"
    f.write_text(XMILE.format(method=method, vendor=vendor, product=product), encoding="utf-8")
    m = load_model(f)
    return m.time.method, m.run()["s"][0]




@pytest.mark.parametrize("method, want, values", [
    ("RK4", "rk4", [0, 0.5, 2, 4.5, 8]),            # exact: t^2/2
    ("Euler", "euler", [0, 0, 1, 3, 6]),            # sum of the left ends
    ("RK2", "rk2", [0, 0.5, 2, 4.5, 8]),            # Heun is exact for a linear rate too
])
def test_method_from_sim_specs(tmp_path, method, want, values):
    got, s = _run(tmp_path, method)
    assert got == want
    np.testing.assert_allclose(s, values, atol=1e-12)


def test_vensim_written_xmile_keeps_euler(tmp_path):
    # Vensim's XMILE export claims RK4 where Vensim ran Euler (SDXorg zeroled_decimals)
    got, s = _run(tmp_path, "RK4", vendor="Ventana Systems, Inc.", product="Vensim")
    assert got == "euler"
    np.testing.assert_allclose(s, [0, 0, 1, 3, 6])


def test_unknown_method_is_an_error(tmp_path):
    with pytest.raises(ModelError, match="integration method 'Gear' is not available"):
        _run(tmp_path, "Gear")


MODULES = """<?xml version="1.0" encoding="utf-8"?>
<xmile version="1.0" xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0">
<header><vendor>isee systems, inc.</vendor></header>
<sim_specs method="Euler"><start>0</start><stop>3</stop><dt>1</dt></sim_specs>
<model><variables>
  <aux name="growth rate"><eqn>0.5</eqn></aux>
  <aux name="scale"><eqn>10</eqn></aux>
  <module name="growth"><connect to="growth.rate" from="growth_rate"/></module>
  <module name="other"><connect to="other.x" from="growth.level"/></module>
  <aux name="out"><eqn>growth.level * 2 + other.y</eqn></aux>
</variables></model>
<model name="growth"><variables>
  <aux name="rate" access="input"><eqn>99</eqn></aux>
  <stock name="level"><eqn>1</eqn><inflow>gain</inflow></stock>
  <flow name="gain"><eqn>level * rate</eqn></flow>
</variables></model>
<model name="other"><variables>
  <aux name="x" access="input"><eqn>0</eqn></aux>
  <aux name="unset" access="input"><eqn>3</eqn></aux>
  <module name="inner"><connect to="inner.k" from=".scale"/></module>
  <aux name="y"><eqn>x * unset + inner.k2</eqn></aux>
</variables></model>
<model name="inner"><variables>
  <aux name="k" access="input"><eqn>0</eqn></aux>
  <aux name="k2"><eqn>k + 1</eqn></aux>
</variables></model>
</xmile>
"""


def test_modules_are_flattened(tmp_path):
    """Stella's modules: each module's variables under its name, inputs connected to their sources
    (a variable of the holding model, another module's, or the top model's with a leading dot), an
    unconnected input keeping its own value, modules inside modules."""
    f = tmp_path / "mod.xmile"
    f.write_text(MODULES, encoding="utf-8")
    m = load_model(f)
    r = m.run()
    level = np.array([1, 1.5, 2.25, 3.375])               # Euler at rate 0.5, dt 1
    np.testing.assert_allclose(r[m.identifier("growth.level")][0], level)
    np.testing.assert_allclose(r["out"][0], 2 * level + level * 3 + (10 + 1))


def test_module_in_another_file_is_refused_naming_it(tmp_path):
    f = tmp_path / "mod.xmile"
    f.write_text(MODULES.replace('<module name="growth">', '<module name="growth" resource="g.stmx">'),
                 encoding="utf-8")
    with pytest.raises(ModelError, match="module 'growth': its model is in another file") as info:
        load_model(f)
    assert len(str(info.value).strip().splitlines()) == 1


MDL = """{UTF-8}
s = INTEG(f, 0) ~~|
f = Time ~~|
FINAL TIME = 4 ~~|
INITIAL TIME = 0 ~~|
SAVEPER = 1 ~~|
TIME STEP = 1 ~~|
\\\\\\---/// Sketch information - do not modify anything except names
V300  Do not put anything below this section - it will be ignored
*View 1
///---\\\\\\
:L<%^E!@
1:Current.vdf
15:0,0,0,{code},0,0
"""


@pytest.mark.parametrize("code, want, values", [
    (0, "euler", [0, 0, 1, 3, 6]), (1, "rk4", [0, 0.5, 2, 4.5, 8]), (5, "rk4", [0, 0.5, 2, 4.5, 8]),
    (3, "rk2", [0, 0.5, 2, 4.5, 8]), (2, "euler", [0, 0, 1, 3, 6]),
])
def test_vensim_integration_setting(tmp_path, code, want, values):
    """Vensim keeps its integration type in the settings after the sketch (line 15:, 4th number, as
    xmutil reads it); Wonderland and thyroid use RK4. The .mdl and XMILE exports write it back."""
    from engine.io.export_mdl import export_mdl
    from engine.io.export_xmile import export_xmile

    f = tmp_path / "m.mdl"
    f.write_text(MDL.replace("{code}", str(code)), encoding="utf-8")
    m = load_model(f)
    assert m.time.method == want
    np.testing.assert_allclose(m.run()["s"][0], values, atol=1e-12)
    again = tmp_path / "again.mdl"
    again.write_text(export_mdl(f), encoding="utf-8")
    assert load_model(again).time.method == want
    assert f'method="{ {"euler": "Euler", "rk4": "RK4", "rk2": "RK2"}[want] }"' in export_xmile(f)
