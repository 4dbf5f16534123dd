"""Build hook: compile the BPF datapath with clang as part of the package build."""

import os
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
BPF_SRC = os.path.join(HERE, "bpf")
BPF_OUT = os.path.join(HERE, "ovsbpfd", "dpif", "bpf")


def compile_bpf() -> None:
    """Run bpf/Makefile, which writes ovsbpfd/dpif/bpf/*.bpf.o."""
    subprocess.run(["make", "-C", BPF_SRC, f"OUT={BPF_OUT}"], check=True)


class BuildPyWithBpf(build_py):
    def run(self) -> None:
        compile_bpf()
        super().run()


setup(cmdclass={"build_py": BuildPyWithBpf})
