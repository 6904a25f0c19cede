"""overt.client — see DESIGN.md §8. (Grows with its issue.)"""
