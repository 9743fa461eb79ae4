"""Job-level functions: each reads files, calls the pure package code, writes files.

Workflow scripts call exactly one of these; tests call them directly too.
"""
