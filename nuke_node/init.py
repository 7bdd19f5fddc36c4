# cramatte for Nuke: add this folder to NUKE_PATH. Nuke runs this file without a __file__ it promises,
# so the folder is found on Nuke's plug-in path by what it holds. cramatte itself comes from
# site-py3.X beside this file (pip install --target, for the Python of this Nuke; see the README) or
# from the folder CRAMATTE_NUKE_SITE names; Nuke's own packages stay first on sys.path.
import os
import sys

import nuke


def _cramatte_setup():
    here = next((p for p in nuke.pluginPath() if os.path.isfile(os.path.join(p, "python", "cramatte_nuke.py"))), None)
    if here is None:
        return
    nuke.pluginAddPath(os.path.join(here, "python"))
    site = os.environ.get("CRAMATTE_NUKE_SITE") or os.path.join(here, "site-py%d.%d" % sys.version_info[:2])
    if os.path.isdir(site) and site not in sys.path:
        sys.path.append(site)


_cramatte_setup()
del _cramatte_setup
