"""The argument parser of every command: a usage error is one line that names the flag.

argparse prints its usage block above the error; with a dozen flags that block buries the one
line that matters. Here the line says where to find the usage instead.
"""

import argparse


class OneLineArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose usage errors are one line, `PROG: error: MESSAGE (see PROG
    --help)`, with exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
