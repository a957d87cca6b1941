"""Security: who calls (authentication), what they may do (authorisation policy)."""
