"""cramatte for OBS Studio: adds the "Portrait Matte (cramatte)" video filter.

Load this file in Tools > Scripts, set *Python environment* to the environment cramatte is installed
in (see the README), then right-click a camera source > Filters > + > Portrait Matte (cramatte).
"""
import glob
import os
import site
import sys

import obspython as obs

HERE = os.path.dirname(os.path.abspath(__file__))
# OBS's working directory can hold a folder named `cramatte` (the checkout itself, started from the
# folder above it), which Python would import as an empty namespace package: never import from there.
sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd())]
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import libobs  # noqa: E402
import portrait_matte  # noqa: E402

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
# The environment last set in this script's properties, so the Description (which OBS reads once, on
# loading the script, before its settings) can say whether the setup works.
REMEMBERED = os.path.join(os.path.expanduser("~"), ".config", "cramatte", "obs_python_env")


def _site_packages(env: str) -> list:
    return [p for p in glob.glob(os.path.join(env, "lib", "python*", "site-packages")) +
            glob.glob(os.path.join(env, "Lib", "site-packages")) if os.path.isdir(p)]


def setup_hint(env: str) -> str:
    venv = env or "~/cramatte-env"
    return (f"Install it for Python {PY} (OBS's): 'python{PY} -m venv {venv}' then "
            f"'{venv}/bin/pip install /path/to/cramatte' (the folder of your cramatte checkout; on Windows "
            f"'{venv}\\Scripts\\pip install C:\\path\\to\\cramatte'), and set 'Python environment' "
            f"below to {venv}. Until then the filter passes video through.")


def find_cramatte(env: str) -> str | None:
    """Import cramatte from OBS's Python or from the environment `env`; None, or what is wrong and what to do."""
    for path in _site_packages(env) if env else []:
        if path not in sys.path:
            site.addsitedir(path)  # its .pth files too: editable installs (pip install -e) work
    if env and not _site_packages(env):
        return f"'{env}' is not a Python environment (no site-packages folder in it). " + setup_hint("")
    for name in [m for m in sys.modules if m == "cramatte" or m.startswith("cramatte.")]:
        if getattr(sys.modules[name], "__file__", None) is None:  # a namespace package from an earlier try
            del sys.modules[name]
    try:
        import cramatte
        import numpy  # noqa: F401
    except ImportError as e:
        where = f" or in {env}" if env else ""
        return f"cramatte is not installed for OBS's Python {PY}{where} ({e}). " + setup_hint(env)
    if getattr(cramatte, "__file__", None) is None:
        del sys.modules["cramatte"]
        return (f"'cramatte' resolves to a folder that is not the package ({', '.join(cramatte.__path__)}). "
                + setup_hint(env))
    return None


def _remembered_env() -> str:
    try:
        with open(REMEMBERED) as f:
            return f.read().strip()
    except OSError:
        return os.environ.get("CRAMATTE_PYTHON_ENV", "")


def _apply(settings) -> None:
    env = obs.obs_data_get_string(settings, "python_env") or os.environ.get("CRAMATTE_PYTHON_ENV", "")
    error = find_cramatte(env)
    portrait_matte.state["import_error"] = error
    portrait_matte.state["python_env"] = env if env and not error else ""
    try:
        os.makedirs(os.path.dirname(REMEMBERED), exist_ok=True)
        with open(REMEMBERED, "w") as f:
            f.write(env)
    except OSError:
        pass
    if error:
        portrait_matte.log(libobs.LOG_WARNING, error)
        print(f"[cramatte] setup needed: {error}")  # the Script Log shows what a script prints


def _status() -> str:
    error = portrait_matte.state["import_error"]
    if error:
        return f"<b>Setup needed:</b> {error}"
    import cramatte
    return f"Ready: cramatte from {os.path.dirname(cramatte.__file__)}"


# At load, before OBS hands over the settings: the environment set last time decides the Description.
portrait_matte.state["import_error"] = find_cramatte(_remembered_env())


def script_description():
    return ("<b>Portrait Matte (cramatte)</b><br>A true alpha matte of the person in a camera source, "
            "without a green screen. Add it from a source's Filters.<br><br>" + _status())


def script_properties():
    props = obs.obs_properties_create()
    obs.obs_properties_add_path(props, "python_env", "Python environment", obs.OBS_PATH_DIRECTORY, "", None)
    obs.obs_properties_add_text(props, "status", _status(), obs.OBS_TEXT_INFO)
    return props


def script_update(settings):
    _apply(settings)


def script_load(settings):
    _apply(settings)
    try:
        if portrait_matte.register(libobs.load()):
            portrait_matte.log(libobs.LOG_INFO, "Portrait Matte filter registered")
            print("[cramatte] Portrait Matte filter registered")
    except OSError as e:
        print(f"[cramatte] cannot register the filter: {e}")


def script_unload():
    portrait_matte.shutdown()
    portrait_matte.log(libobs.LOG_INFO, "script unloaded, workers stopped")
