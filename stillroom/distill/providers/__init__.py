"""Built-in providers, one file each; `stillroom.distill.provider.PROVIDERS` imports them on first lookup."""
