from tests.webhooks.receiver import receivers

__all__ = ["receivers"]
