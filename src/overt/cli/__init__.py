"""overt.cli — see DESIGN.md §8. (Grows with its issue.)"""
