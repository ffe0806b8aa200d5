"""The home page: the model card, live numbers from the process's own metrics, a try-it form."""
