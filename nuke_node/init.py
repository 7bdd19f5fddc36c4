# cramatte for Nuke: add this folder to NUKE_PATH (or copy it into ~/.nuke and call nuke.pluginAddPath).
import os

import nuke

nuke.pluginAddPath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))
