"""The contract's wire format, written directly where that is much cheaper than messages.

- ``encoding``: the tags, varints and sizes, each written once;
- ``codec``: a record as a ``SeriesResult.records`` field (as the embedded store keeps it);
- ``answers``: a Read answer joined from such fields.

``store/sqlite/sql.py`` cuts payloads out of stored records with offsets made from
``encoding``'s constants.
"""
