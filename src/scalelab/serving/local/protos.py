"""TF Serving's configuration messages that the tensorflow-serving-api package does not ship
(BatchingParameters, MonitoringConfig): built from their fields into protobuf's default pool,
and read from text format as TF Serving reads its configuration files."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from google.protobuf.message import Message

from .status import invalid


def message_class(
    name: str, build: Callable[[], descriptor_pb2.FileDescriptorProto]
) -> type[Message]:
    """The class of message `name` (e.g. tensorflow.serving.MonitoringConfig), adding the file
    `build` describes to the default pool the first time."""
    pool = descriptor_pool.Default()
    try:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    except KeyError:
        pool.Add(build())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))


def parse_text(text: str, message: Message) -> Message:
    """Fill `message` from text format; INVALID_ARGUMENT naming the message if it does not parse."""
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise invalid(
            f"Error parsing text-format {message.DESCRIPTOR.full_name}: {error}"
        ) from None
    return message
