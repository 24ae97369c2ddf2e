"""The offline twin of the deployed system (issue #12): real images run under the plan's own settings.

Not part of any image and not run by ``make test``; ``make e2e`` runs it. docs/twin.md maps each AWS
piece to its stand-in here and says what is not emulated.
"""
