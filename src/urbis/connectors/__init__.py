"""Connectors for departmental systems: files and feeds converted into NGSI-LD entities.

The modules here convert (records in, normalized NGSI-LD entity dicts out); fetching files or
URLs on a schedule and writing the entities belong to the agents' services.
"""
