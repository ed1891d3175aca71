"""The lab note's web server: a Flask app on port 8080 that says which
network namespace it answers from (run it with nsrun; see flask.yaml)."""
import os

from flask import Flask

app = Flask(__name__)


def namespace():
    """The named network namespace this process is in: the one of
    /run/netns whose inode is our own network namespace's."""
    ours = os.stat("/proc/self/ns/net").st_ino
    for name in sorted(os.listdir("/run/netns")):
        try:
            if os.stat(os.path.join("/run/netns", name)).st_ino == ours:
                return name
        except OSError:
            continue
    return "the host"


@app.route("/")
def hello():
    return f"hello from {namespace()}\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8080)
