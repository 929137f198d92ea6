"""The rosbags typestore of pi05_moe: ROS 2 Kilted's standard types plus ``pi05_moe_msgs``.

``rosbags`` (de)serialises CDR without ROS. It knows the standard message types of each distro;
our own interfaces are registered from the ``.msg`` files that ``pi05_moe_msgs`` installs (found
through the ament index, or next to this source tree in a checkout). Types a bag embeds and the
store lacks (another robot's custom messages) are registered from the bag itself.
"""

from __future__ import annotations

import functools
from pathlib import Path

from rosbags.interfaces import Connection, MessageDefinitionFormat
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

MSG_PACKAGE = 'pi05_moe_msgs'
# rosbag2 joins a type's dependencies into one text with this separator line.
_DEF_SEPARATOR = '=' * 80 + '\n'


def custom_msg_dir() -> Path:
    """The directory holding ``pi05_moe_msgs``'s ``.msg`` files (installed share, else source)."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )

        try:
            installed = Path(get_package_share_directory(MSG_PACKAGE)) / 'msg'
            if installed.is_dir():
                return installed
        except PackageNotFoundError:
            pass
    except ImportError:  # a laptop with rosbags but no ament index
        pass
    source = Path(__file__).resolve().parents[2] / MSG_PACKAGE / 'msg'
    if source.is_dir():
        return source
    raise FileNotFoundError(
        f'{MSG_PACKAGE} message definitions not found: neither installed (ament index) nor at '
        f'{source}. Build the workspace (`make setup`) and `source env.sh`.')


@functools.lru_cache(maxsize=1)
def _base_fielddefs() -> dict:
    store = get_typestore(Stores.ROS2_KILTED)
    types = dict(store.fielddefs)
    for path in sorted(custom_msg_dir().glob('*.msg')):
        types.update(get_types_from_msg(path.read_text(), f'{MSG_PACKAGE}/msg/{path.stem}'))
    return types


def make_typestore() -> Typestore:
    """A fresh typestore with the standard Kilted types and ``pi05_moe_msgs`` registered.

    Fresh so that registering a bag's embedded types never leaks into another bag's reader.
    """
    store = get_typestore(Stores.EMPTY)
    store.register(_base_fielddefs())
    return store


def _types_from_definition(connection: Connection) -> dict:
    """The types a connection's embedded message definition declares (empty when it has none)."""
    fmt, text = connection.msgdef.format, connection.msgdef.data
    if fmt == MessageDefinitionFormat.MSG:
        return get_types_from_msg(text, connection.msgtype)
    if fmt == MessageDefinitionFormat.IDL:
        if not text.startswith(f'{_DEF_SEPARATOR}IDL: '):
            return get_types_from_idl(text)
        types: dict = {}
        for part in text.split(_DEF_SEPARATOR)[1:]:
            types.update(get_types_from_idl(part.split('\n', 1)[1]))
        return types
    return {}


def register_bag_types(store: Typestore, connections: list[Connection]) -> list[str]:
    """Register the types embedded in a bag that ``store`` lacks; return the names added."""
    added: dict = {}
    for connection in connections:
        if connection.msgtype in store.fielddefs or connection.msgtype in added:
            continue
        types = _types_from_definition(connection)
        added.update({k: v for k, v in types.items() if k not in store.fielddefs})
    if added:
        store.register(added)
    return sorted(added)
