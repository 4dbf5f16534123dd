"""dpif"""
