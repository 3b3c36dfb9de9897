"""Wire protocol of netmarl: message schemas, the msgpack codec, socket helpers; imports nothing of the project."""
