"""What the workload scripts (write-workload.py, fault-workload.py,
power-cut.py) share: messages, loading a sibling script, and a command
line of subcommands whose "run" has the options every workload takes.
"""

import argparse
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def load(name, file):
    """The script file next to this one, imported as module name."""
    spec = importlib.util.spec_from_file_location(name,
                                                  os.path.join(HERE, file))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def command_line(doc, ops):
    """(parser, subparsers, run): run is the "run" subcommand, with
    --uri, --seed, --ops (default ops) and --cluster-size."""
    p = argparse.ArgumentParser(description=doc)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--uri", required=True)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--ops", type=int, default=ops)
    r.add_argument("--cluster-size", type=int, default=65536,
                   help="favoured alignment")
    return p, sub, r


def run(parser, commands):
    """Parse the command line and run its subcommand: commands maps each
    name to a function of the arguments returning the exit status."""
    args = parser.parse_args()
    return commands[args.cmd](args)
