"""Actors: typed actors with tell and ask, bounded mailboxes, lifecycle, dead letters."""
