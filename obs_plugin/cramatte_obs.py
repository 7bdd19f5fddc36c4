"""cramatte for OBS Studio: adds the "Portrait Matte (cramatte)" video filter.

Load this file in Tools > Scripts. Then right-click a camera source > Filters > + > Portrait Matte.
"""
import glob
import os
import sys

import obspython as obs

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import libobs  # noqa: E402
import portrait_matte  # noqa: E402

PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def _site_packages(env: str) -> list:
    return [p for p in glob.glob(os.path.join(env, "lib", "python*", "site-packages")) +
            glob.glob(os.path.join(env, "Lib", "site-packages")) if os.path.isdir(p)]


def find_cramatte(env: str) -> str | None:
    """Import cramatte from OBS's Python or from the environment `env`; None, or what to install."""
    for path in _site_packages(env) if env else []:
        if path not in sys.path:
            sys.path.append(path)
    try:
        import cramatte  # noqa: F401
        import numpy  # noqa: F401
        return None
    except ImportError as e:
        where = f" or in {env}" if env else ""
        return (f"cramatte is not installed for OBS's Python {PY}{where} ({e}). Install it with Python {PY}: "
                f"'python{PY} -m venv ~/cramatte-env' then '~/cramatte-env/bin/pip install cramatte' "
                f"(Windows: '%USERPROFILE%\\cramatte-env\\Scripts\\pip install cramatte'), and set "
                f"'Python environment' below to that folder. Until then the filter passes video through.")


def _apply(settings) -> None:
    env = obs.obs_data_get_string(settings, "python_env") or os.environ.get("CRAMATTE_PYTHON_ENV", "")
    error = find_cramatte(env)
    portrait_matte.state["import_error"] = error
    if error:
        portrait_matte.log(libobs.LOG_WARNING, error)


def script_description():
    error = portrait_matte.state["import_error"]
    text = ("<b>Portrait Matte (cramatte)</b><br>A true alpha matte of the person in a camera source, "
            "without a green screen. Add it from a source's Filters.")
    return text + (f"<br><br><b>Setup needed:</b> {error}" if error else "")


def script_properties():
    props = obs.obs_properties_create()
    obs.obs_properties_add_path(props, "python_env", "Python environment", obs.OBS_PATH_DIRECTORY, "", None)
    return props


def script_update(settings):
    _apply(settings)


def script_load(settings):
    _apply(settings)
    try:
        if portrait_matte.register(libobs.load()):
            portrait_matte.log(libobs.LOG_INFO, "Portrait Matte filter registered")
    except OSError as e:
        print(f"[cramatte] cannot register the filter: {e}")


def script_unload():
    portrait_matte.shutdown()
    portrait_matte.log(libobs.LOG_INFO, "script unloaded, workers stopped")
