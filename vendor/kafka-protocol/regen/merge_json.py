#!/usr/bin/env python3
"""Kafka 3.9's message JSONs, extended with the versions Kafka 4.1 added to the same
messages, for the APIs whose low versions Kafka 4 dropped (KIP-896). Usage:
merge_json.py DIR (DIR holds clients/src/main/resources/common/message/*.json of 3.9;
edited in place). The additions are read off kafka-protocol 0.18's generated code
(Kafka 4.1): Produce v12-13, Fetch v18, ListOffsets v10, OffsetCommit/OffsetFetch
response v10."""
import sys
from pathlib import Path

D = Path(sys.argv[1])


def edit(name, *subs):
    p = D / name
    s = p.read_text()
    for a, b in subs:
        assert s.count(a) == 1, (name, a, s.count(a))
        s = s.replace(a, b)
    p.write_text(s)


TOPIC_ID_13 = '\n      { "name": "TopicId", "type": "uuid", "versions": "13+", "mapKey": true, "ignorable": true, "about": "The unique topic ID" },'
NAME = '{ "name": "Name", "type": "string", "versions": "0+", "entityType": "topicName", "mapKey": true,\n        "about": "The topic name%s" },'
NAME_12 = '{ "name": "Name", "type": "string", "versions": "0-12", "entityType": "topicName", "mapKey": true, "ignorable": true,\n        "about": "The topic name%s" },'
edit("ProduceRequest.json", ('"validVersions": "0-11"', '"validVersions": "0-13"'), (NAME % ".", NAME_12 % "." + TOPIC_ID_13))
edit("ProduceResponse.json", ('"validVersions": "0-11"', '"validVersions": "0-13"'), (NAME % "", NAME_12 % "" + TOPIC_ID_13))
edit(
    "FetchRequest.json",
    ('"validVersions": "0-17"', '"validVersions": "0-18"'),
    (
        '"about": "The directory id of the follower fetching" }',
        '"about": "The directory id of the follower fetching" },\n'
        '        { "name": "HighWatermark", "type": "int64", "versions": "18+", "default": "9223372036854775807", "taggedVersions": "18+", "tag": 1, "ignorable": true,\n'
        '          "about": "The high-watermark known by the replica. -1 if the high-watermark is not known and 9223372036854775807 if the feature is not supported." }',
    ),
)
edit("FetchResponse.json", ('"validVersions": "0-17"', '"validVersions": "0-18"'))
edit("ListOffsetsResponse.json", ('"validVersions": "0-9"', '"validVersions": "0-10"'))
p = D / "ListOffsetsRequest.json"
s = p.read_text().replace('"validVersions": "0-9"', '"validVersions": "0-10"')
i = s.rstrip().rfind("]")
s = (
    s[:i].rstrip()
    + ',\n    { "name": "TimeoutMs", "type": "int32", "versions": "10+", "ignorable": true,\n'
    '      "about": "The timeout to await a response in milliseconds for requests that require reading from remote storage for topics enabled with tiered storage." }\n  ]\n}\n'
)
p.write_text(s)
edit(
    "OffsetCommitResponse.json",
    ('"validVersions": "0-9"', '"validVersions": "0-10"'),
    (
        '      { "name": "Name", "type": "string", "versions": "0+", "entityType": "topicName",\n        "about": "The topic name." },',
        '      { "name": "Name", "type": "string", "versions": "0-9", "entityType": "topicName", "ignorable": true,\n        "about": "The topic name." },\n'
        '      { "name": "TopicId", "type": "uuid", "versions": "10+", "ignorable": true, "about": "The topic ID." },',
    ),
)
edit(
    "OffsetFetchResponse.json",
    ('"validVersions": "0-9"', '"validVersions": "0-10"'),
    (
        '        { "name": "Name", "type": "string", "versions": "8+", "entityType": "topicName",\n          "about": "The topic name." },',
        '        { "name": "Name", "type": "string", "versions": "8-9", "entityType": "topicName", "ignorable": true,\n          "about": "The topic name." },\n'
        '        { "name": "TopicId", "type": "uuid", "versions": "10+", "ignorable": true, "about": "The topic ID." },',
    ),
)
