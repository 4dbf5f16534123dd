"""vswitch"""
