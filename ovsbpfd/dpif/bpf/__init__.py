"""The bpf datapath provider: libbpf binding, struct mirrors, loader and BpfDpif."""
