"""Nurture actions: the playbook file (which type gets which action) and the decisions it drives."""
