"""A stand-in for OBS's `obspython` with the calls cramatte_obs.py makes."""
OBS_PATH_DIRECTORY = 2
OBS_TEXT_INFO = 3
settings: dict = {}
properties: list = []


def obs_data_get_string(data, name):
    return data.get(name, "")


def obs_properties_create():
    properties.clear()
    return properties


def obs_properties_add_path(props, name, desc, kind, flt, default):
    props.append(name)


def obs_properties_add_text(props, name, desc, kind):
    props.append(name)
    texts[name] = desc


texts: dict = {}
