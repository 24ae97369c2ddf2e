"""Shared building blocks of the program: IAM policy documents, required tags, the values passed between components."""
