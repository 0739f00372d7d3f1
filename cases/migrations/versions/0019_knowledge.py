"""knowledge: the knowledge base (知识库) — articles, their published versions, the search
index, agents' "helpful" marks (agent_desk/knowledge/models.py)

The search index's full-text part differs by database: on SQLite the FTS5 table kb_fts (the
search words, unicode61, rowid = article id); on PostgreSQL the tsvector column kb_words.tsv
with a GIN index. New tables only: nothing existing changes.

Revision ID: 0019_knowledge
Revises: 0018_insight
Create Date: 2027-01-10 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_knowledge"
down_revision = "0018_insight"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "kb_articles",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ref", sa.String(64), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("matter", sa.String(96), nullable=False, server_default="", index=True),
        sa.Column("city", sa.String(32), nullable=True, index=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("authors", sa.JSON(), nullable=False),
        sa.Column("submitted_by", sa.String(64), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=False, server_default=""),
        sa.Column("versions", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("live_version", sa.Integer(), nullable=True),
        sa.Column("views", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("helpful", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "kb_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("article_id", sa.Integer(),
                  sa.ForeignKey("kb_articles.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("matter", sa.String(96), nullable=False, server_default=""),
        sa.Column("city", sa.String(32), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("authors", sa.JSON(), nullable=False),
        sa.Column("approved_by", sa.String(64), nullable=False),
        sa.Column("published_at", TS, nullable=False),
        sa.UniqueConstraint("article_id", "version", name="uq_kb_versions"),
    )
    op.create_table(
        "kb_index",
        sa.Column("article_id", sa.Integer(),
                  sa.ForeignKey("kb_articles.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("matter", sa.String(96), nullable=False, server_default="", index=True),
        sa.Column("city", sa.String(32), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("length", sa.Integer(), nullable=False),
    )
    op.create_index("ix_kb_index_visible", "kb_index",
                    ["valid_from", "valid_to", "city", "length"])
    op.create_table(
        "kb_words",
        sa.Column("article_id", sa.Integer(),
                  sa.ForeignKey("kb_articles.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("title_words", sa.Text(), nullable=False),
        sa.Column("body_words", sa.Text(), nullable=False),
    )
    op.create_table(
        "kb_terms",
        sa.Column("word", sa.String(64), primary_key=True),
        sa.Column("docs", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "kb_feedback",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("article_id", sa.Integer(),
                  sa.ForeignKey("kb_articles.id", ondelete="CASCADE"), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.UniqueConstraint("article_id", "username", name="uq_kb_feedback"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE kb_words ADD COLUMN tsv tsvector NOT NULL "
                   "DEFAULT ''::tsvector")
        op.execute("CREATE INDEX ix_kb_words_tsv ON kb_words USING gin (tsv)")
    else:
        # The words as they are (letters and digits, lower case): no diacritics folded.
        op.execute("CREATE VIRTUAL TABLE kb_fts USING fts5(words, "
                   "tokenize = 'unicode61 remove_diacritics 0')")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE IF EXISTS kb_fts")
    op.drop_table("kb_feedback")
    op.drop_table("kb_terms")
    op.drop_table("kb_words")
    op.drop_table("kb_index")
    op.drop_table("kb_versions")
    op.drop_table("kb_articles")
