"""Miscellaneous utilities, chiefly weight sampling for transfer learning."""
