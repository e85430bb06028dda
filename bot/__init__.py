"""Composition root: settings, factories, runners, middlewares, i18n, notifications."""
