"""The worker side of Descent: Celery tasks that train jobs with PyTorch.

``workers`` imports ``service`` (specs, settings, database models); never the other
way round, so the API starts without torch.
"""
