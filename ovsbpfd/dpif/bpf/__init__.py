"""dpif/bpf"""
