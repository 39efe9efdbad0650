"""MovieLens 1M (GroupLens): `ratings.dat`, `users.dat`, `movies.dat` (`::`, latin-1).

`root` points at an extracted copy; without it the official archive is downloaded once into the
data cache (checksum-verified). Side tables as for ML-100K: users (age group, gender,
occupation, zip prefix), items (genre list, title tokens, release year).
"""

from __future__ import annotations

from bench.datasets.ml100k import item_features, user_features

from bench.data import RawData
from bench.download import ArchiveDataset
from bench.readers import read_delimited

URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
MD5 = "c4d9eecfca2ab87c1945afe126590906"
SHA256 = "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"
# users.dat occupation codes, as in the archive's README.
OCCUPATIONS = ("other", "academic/educator", "artist", "clerical/admin", "college/grad student",
               "customer service", "doctor/health care", "executive/managerial", "farmer",
               "homemaker", "K-12 student", "lawyer", "programmer", "retired",
               "sales/marketing", "scientist", "self-employed", "technician/engineer",
               "tradesman/craftsman", "unemployed", "writer")


class ML1M(ArchiveDataset):
    archive = "ml-1m"
    files = ("ratings.dat", "users.dat", "movies.dat")
    URL, MD5, SHA256 = URL, MD5, SHA256

    def load(self) -> RawData:
        root = self.location()
        inter = read_delimited(root / "ratings.dat", "::",
                               ["user", "item", "rating", "timestamp"],
                               what="UserID::MovieID::Rating::Timestamp")
        users = read_delimited(root / "users.dat", "::",
                               ["user", "gender", "age", "occupation", "zip"],
                               what="UserID::Gender::Age::Occupation::Zip-code")
        codes = {str(k): name for k, name in enumerate(OCCUPATIONS)}
        users["occupation"] = users["occupation"].map(lambda c: codes.get(str(c).strip(), c))
        items = read_delimited(root / "movies.dat", "::", ["item", "title", "genres"],
                               what="MovieID::Title::Genres")
        return RawData(inter, user_features(users, "age_group", self.zip_prefix),
                       item_features(items, None, None))
