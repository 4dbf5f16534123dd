"""ofproto"""
