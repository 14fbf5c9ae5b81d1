"""The seed's app: Employee and Company models under Flask-Evolve, runnable as `python app.py db ...`."""

import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_evolve import Migrate, manage

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///data.db")
db = SQLAlchemy(app)
migrate = Migrate(app, db)


class Employee(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String, unique=True, nullable=False)
    email = db.Column(db.String, unique=True, nullable=False)


class Company(db.Model):
    cid = db.Column(db.Integer, primary_key=True)
    cname = db.Column(db.String, unique=True, nullable=False)
    clocation = db.Column(db.String, unique=False, nullable=False)


if __name__ == "__main__":
    manage(app)
