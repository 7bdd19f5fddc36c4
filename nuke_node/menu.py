# Toolbar entry: Nodes > cramatte > Portrait Matte
import nuke

import cramatte_nuke

nuke.menu("Nodes").addMenu("cramatte").addCommand("Portrait Matte", cramatte_nuke.create_node)
