"""Traffic to a model server (Chapters 2-3): `rest_grpc` clients, the load `driver`, `timing` of a
request's parts, a throttled TCP `proxy`, and `scripted` servers that misbehave on cue."""
